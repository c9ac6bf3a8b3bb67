"""ksearch's layers, lowest first: a module imports only from its own layer or those below it, at
module level and inside functions alike (an import moved into a function to dodge a cycle is still
an upward dependency). A new top-level package must be placed here before it can be imported."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ksearch"
LAYERS = [
    {"__init__", "errors", "paths", "settings", "plugins", "proctree"},
    {"evidence"},  # the packet contract
    {"log"},  # the store: it imports nothing above evidence/
    {"target"},
    {"task"},
    {"compile"},
    {"audit"},
    {"context"},
    {"harness"},
    {"worldmodel"},
    {"propose"},
    {"search"},
    {"analysis", "selfbench"},  # what reads the log and also needs the verbs; ksearch measuring itself
    {
        "registry",
        "cluster",
        "mcp",
        "cli",
        "cli_common",
        "cli_context",
        "cli_log",
        "cli_mcp",
        "__main__",
    },  # entry points
]
LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _top(dotted: str) -> str:
    """The top-level module or package of ksearch a dotted name lives in (a name defined in
    ksearch/__init__.py, or the package itself, lives in "__init__")."""
    part = (dotted.split(".") + ["__init__"])[1]
    return part if (PACKAGE / part).is_dir() or (PACKAGE / f"{part}.py").is_file() else "__init__"


def _imports(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "ksearch"]


def test_no_module_imports_from_a_layer_above_its_own():
    unplaced, upward = set(), set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for line, target in _imports(ast.parse(path.read_text()), module):
            src, dst = _top(module), _top(target)
            unplaced |= {name for name in (src, dst) if name not in LAYER_OF}
            if src in LAYER_OF and dst in LAYER_OF and LAYER_OF[dst] > LAYER_OF[src]:
                upward.add(f"{path.relative_to(PACKAGE.parent)}:{line}: {src} -> {dst}")
    assert not unplaced, f"place these in LAYERS (tests/test_layers.py): {sorted(unplaced)}"
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))
