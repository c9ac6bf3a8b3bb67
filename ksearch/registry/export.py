"""`ksearch export`: the best kernel of each search run as an installable Python package.

The package (`pyproject.toml` depending on torch and triton only) holds one module per kernel under
kernels/ (template helpers it imports from ksearch vendored under kernels/_vendor/), the tasks'
references as fallbacks, each kernel's EvidencePacket under packets/, and manifest.json (the
`select.Manifest` schema). `select.py`, `runtime.py`, `registry.py`, `numerics.py` and `bench.py`
are copies of this package's modules (`formula.py` of ksearch/task's), so the installed package selects and explains exactly as
`ksearch registry` does, and checks (numerics) and times (bench) its kernels without ksearch.

One registry entry per (kernel, capability): each passing packet of the best evaluation gives the
arch of its target (sm_90a, gfx950, ...), and a verification in the Triton interpreter adds `cpu`.
Exporting several runs keeps an entry only if selection picks it for some verified shape of its
(operator, capability, dtype); the others are dropped with the reason.
"""

from __future__ import annotations

import ast
import re
import shutil
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path

from ksearch.errors import KsearchError, LogError
from ksearch.evidence import EvidencePacket
from ksearch.evidence.packet import source_hash
from ksearch.log import read_blob
from ksearch.log.history import read_rows
from ksearch.log.index import connect_readonly, read_evaluation_packets
from ksearch.log.rows import PacketId, RunStart, RunStop
from ksearch.propose.templates.base import KERNEL_DIR, KERNEL_PACKAGE
from ksearch.registry.select import (
    CPU,
    MANIFEST,
    AxisRange,
    Kernel,
    Manifest,
    OpSpec,
    Platform,
    TensorDecl,
    constant_params,
    explain,
)
from ksearch.target import load_target
from ksearch.task import Task, load_task

LIBRARY_DIR = Path(__file__).parent
COPIED = {  # source file -> its name in the package
    LIBRARY_DIR / "select.py": "select.py",
    LIBRARY_DIR.parent / "task" / "formula.py": "formula.py",  # select reads shape formulas with it
    LIBRARY_DIR / "runtime.py": "runtime.py",
    LIBRARY_DIR / "pkg_registry.py": "registry.py",
    LIBRARY_DIR / "pkg_numerics.py": "numerics.py",
    LIBRARY_DIR / "pkg_bench.py": "bench.py",
}
ALIASES = {"matmul": ["mm"]}  # the torch name users reach for
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class ExportError(KsearchError):
    """A run cannot be exported (no passing kernel, unsupported language or task, bad --name)."""


@dataclass
class Found:
    """A kernel entry with what the package needs besides its manifest row."""

    kernel: Kernel
    source: str
    packet: EvidencePacket
    task: Task


@dataclass
class ExportResult:
    root: Path
    package: str
    kept: list[Kernel]
    dropped: list[str] = field(default_factory=list)  # "<kernel id> (run ...): why"


def export_runs(runs: list[Path], to: Path, name: str = "ksearch_kernels") -> ExportResult:
    if not _NAME.match(name):
        raise ExportError(f"--name {name!r} is not a Python package name; use lowercase letters, digits, _")
    found: list[Found] = []
    dropped: list[str] = []
    for run_dir in runs:
        found += run_kernels(Path(run_dir))
    kept = merge(found, dropped)
    root = Path(to)
    write_package(root, name, kept)
    return ExportResult(root, name, [f.kernel for f in kept], dropped)


# ---- reading a run ------------------------------------------------------------------------------


def run_kernels(run_dir: Path) -> list[Found]:
    """The registry entries of a run's best kernel, one per capability its evidence covers."""
    row = next(read_rows(run_dir, RunStart.KIND), None)
    start = row.payload if row is not None else None
    if row is None or not isinstance(start, RunStart):
        raise ExportError(f"{run_dir} has no run_start row: it is not a ksearch run directory")
    best_file = run_dir / "best_packet.json"
    if not best_file.is_file():
        raise ExportError(f"{run_dir} has no best_packet.json: no candidate passed, or the run never stopped")
    primary = EvidencePacket.model_validate_json(best_file.read_text())
    stops = [r.payload for r in read_rows(run_dir, RunStop.KIND) if isinstance(r.payload, RunStop)]
    best = stops[-1].best if stops else None
    if primary.candidate.language != "triton":
        raise ExportError(
            f"{run_dir}: the best kernel is {primary.candidate.language}; only Triton kernels are exported"
        )
    task = load_task(str(start.config.get("task", start.task)))
    spec = op_spec(task)
    source = _source(run_dir, primary)
    verified = primary.validation.workloads_checked if primary.validation else []
    shapes = [{a: task.axes_for(w)[a] for a in task.spec.var_axes} for w in verified]
    constraints = {a: AxisRange.of([s[a] for s in shapes]) for a in task.spec.var_axes} if shapes else {}
    packets = [primary, *(p for p in _other_packets(run_dir, primary) if p.status.value == "pass")]
    entries = [(p, load_target(p.candidate.target).arch, p.candidate.target) for p in packets]
    if primary.validation is not None and primary.validation.backend.startswith("triton-interpreter"):
        entries.append((primary, CPU, CPU))
    found = []
    for packet, capability, target in entries:
        measured = packet.performance is not None and packet.performance.speedup_geomean is not None
        if measured:
            assert packet.performance is not None and packet.performance.speedup_geomean is not None
            priority = packet.performance.speedup_geomean
            over = "/".join(sorted({w.baseline for w in packet.performance.workloads if w.baseline}))
            basis = f"measured geomean speedup over {over or 'the baseline'} on {packet.performance.device}"
        else:
            reason = packet.unmeasured.reason.value if packet.unmeasured else "no speedup"
            estimate = _static_estimate(run_dir, packet, task) if target != CPU else None
            priority = estimate or 0.0
            basis = f"{reason}; " + (
                f"static-estimate:{target} (modelled SOL fraction)" if estimate else "no estimate"
            )
        digest = primary.candidate.source_hash
        kernel = Kernel(
            id=f"{spec.name}-{primary.candidate.dtype}-{capability}-{digest[:10]}",
            op=spec.name,
            dtype=primary.candidate.dtype,
            capability=capability,
            target=target,
            module=f"{spec.name}_{digest[:12]}",
            language=primary.candidate.language,
            constraints=constraints,
            params=dict(constant_params(spec)),
            priority=float(priority),
            measured=measured,
            basis=basis,
            verified_on=primary.validation.backend if primary.validation else "unverified",
            verified_shapes=shapes,
            provenance={
                "run": row.run,
                "candidate": best.candidate if best else "",
                "packet_id": packet.packet_id,
                "source_hash": digest,
                "packet": f"packets/{packet.packet_id.replace('@', '_')}.json",
            },
        )
        found.append(Found(kernel, source, packet, task))
    return found


def op_spec(task: Task) -> OpSpec:
    spec = task.spec
    seen = set(spec.const_axes)
    for t in spec.inputs.values():
        seen |= {a for d in t.shape if isinstance(d, str) for a in re.findall(r"[A-Za-z_]\w*", d)}
    for name, t in spec.outputs.items():
        unknown = {a for d in t.shape if isinstance(d, str) for a in re.findall(r"[A-Za-z_]\w*", d)} - seen
        if unknown:
            raise ExportError(
                f"task {task.name}: the size {', '.join(sorted(unknown))} of output {name} does not follow "
                "from its inputs, so the library cannot allocate it; such tasks are not exported yet"
            )

    def decls(tensors: dict) -> list[TensorDecl]:
        return [TensorDecl(n, t.dtype, list(t.shape)) for n, t in tensors.items()]

    return OpSpec(
        name=task.name,
        description=spec.description,
        inputs=decls(spec.inputs),
        outputs=decls(spec.outputs),
        entry=spec.entry,
        const_axes=dict(spec.const_axes),
        params=dict(spec.params),
        reference=task.name,
        aliases=ALIASES.get(task.name, []),
        # numerics checks kernels in the package with these, and bench names the packets' workloads
        tolerances={d: t.model_dump() for d, t in spec.tolerances.items()},
        workloads={w.name: dict(w.axes) for w in spec.workloads},
    )


def _static_estimate(run_dir: Path, packet: EvidencePacket, task: Task) -> float | None:
    """The static model's score of the kernel on the packet's own target (compiled here, from the
    compile cache where it can): how an unmeasured kernel ranks among unmeasured ones."""
    from ksearch.compile import CompileRequest, compile_many
    from ksearch.search.estimate import static_score

    blob = packet.candidate.source_blob
    path = run_dir / blob if blob else run_dir / "best_kernel.py"
    target = packet.candidate.target
    request = CompileRequest(  # as the run compiled it: on its workloads (its cache entry, if present)
        source_path=str(path),
        task=str(task.root),
        target=target,
        dtype=packet.candidate.dtype,
        workloads=tuple(packet.candidate.shape_suite) or None,
    )
    (result,) = compile_many([request], jobs=1)
    return static_score(task, packet.candidate.dtype, result, load_target(target)) if result.ok else None


def _source(run_dir: Path, packet: EvidencePacket) -> str:
    blob = packet.candidate.source_blob
    data = read_blob(run_dir, blob) if blob else (run_dir / "best_kernel.py").read_bytes()
    if source_hash(data) != packet.candidate.source_hash:  # provenance must name this very source
        raise ExportError(f"{run_dir}: the best kernel's source does not hash to its packet's source_hash")
    return data.decode()


def _other_packets(run_dir: Path, primary: EvidencePacket) -> list[EvidencePacket]:
    """The same evaluation's packets for the run's other targets, through the index."""
    pid = PacketId.parse(primary.packet_id)
    try:
        with closing(connect_readonly(run_dir)) as conn:
            packets = read_evaluation_packets(conn, run_dir, pid.evaluation)
    except LogError:  # no index: the best packet alone still describes the kernel
        return []
    return [p for p in packets if p.packet_id != primary.packet_id]


# ---- merging ------------------------------------------------------------------------------------


def merge(found: list[Found], dropped: list[str]) -> list[Found]:
    """Keep one entry per id (the highest ranked), then the entries selection picks for some
    verified shape of their (operator, capability, dtype); report the others in `dropped`."""
    unique: dict[str, Found] = {}
    for f in sorted(found, key=lambda f: f.kernel.rank(), reverse=True):
        first = unique.get(f.kernel.id)
        if first is None:
            unique[f.kernel.id] = f
            continue
        # the same source from another run: it was verified on that run's shapes too
        known = first.kernel.verified_shapes
        shapes = known + [s for s in f.kernel.verified_shapes if s not in known]
        constraints = {a: AxisRange.of([s[a] for s in shapes]) for a in first.kernel.constraints}
        first.kernel = replace(first.kernel, verified_shapes=shapes, constraints=constraints)
        dropped.append(
            f"{f.kernel.id} ({f.kernel.provenance['run']}): the same kernel as in run "
            f"{first.kernel.provenance['run']}; its verified shapes were added there"
        )
    specs = {f.kernel.op: op_spec(f.task) for f in unique.values()}
    manifest = Manifest("merge", specs, [f.kernel for f in unique.values()])
    winners: set[str] = set()
    for k in manifest.kernels:
        for shape in k.verified_shapes:
            e = explain(manifest, k.op, Platform(k.capability, interpret=True), k.dtype, shape)
            winners.add(e.chosen.id if e.chosen else k.id)
    for f in unique.values():
        if f.kernel.id not in winners:
            dropped.append(
                f"{f.kernel.id} ({f.kernel.provenance['run']}): dominated, a higher-priority kernel is chosen "
                f"at every verified shape of {f.kernel.op} {f.kernel.dtype} on {f.kernel.capability}"
            )
    return [f for f in unique.values() if f.kernel.id in winners]


# ---- writing the package ------------------------------------------------------------------------


def vendor(source: str, vendored: dict[str, str], prefix: str = "._vendor.") -> str:
    """`source` with each `from ksearch.propose.templates.kernels.<m> import ...` pointed at
    `<prefix>.<m>` and <m> (with what it imports from its siblings) added to `vendored`."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    for node in sorted(imports, key=lambda n: n.lineno, reverse=True):  # edits from the end keep line numbers
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        if not any(n == "ksearch" or n.startswith("ksearch.") for n in names):
            continue
        module = names[0].removeprefix(KERNEL_PACKAGE + ".")
        if not isinstance(node, ast.ImportFrom) or module == names[0] or "." in module:
            raise ExportError(
                f"line {node.lineno}: `{ast.unparse(node)}` needs ksearch at run time; only helpers of "
                f"{KERNEL_PACKAGE} can be vendored into the package"
            )
        if module not in vendored:
            vendored[module] = ""  # before recursing: helpers may import each other
            vendored[module] = vendor((KERNEL_DIR / f"{module}.py").read_text(), vendored, ".")
        what = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in node.names)
        indent = lines[node.lineno - 1][: node.col_offset]
        end = node.end_lineno or node.lineno
        lines[node.lineno - 1 : end] = [f"{indent}from {prefix}{module} import {what}\n"]
    return "".join(lines)


def write_package(root: Path, name: str, kept: list[Found]) -> None:
    pkg = root / name
    if pkg.exists():
        if not (pkg / MANIFEST).is_file():
            raise ExportError(
                f"{pkg} exists and is not an exported kernel library; choose another --to or --name"
            )
        shutil.rmtree(pkg)  # a re-export replaces the previous one
    for sub in ("kernels/_vendor", "references", "packets"):
        (pkg / sub).mkdir(parents=True)
    vendored: dict[str, str] = {}
    for f in kept:
        (pkg / "kernels" / f"{f.kernel.module}.py").write_text(vendor(f.source, vendored))
        (pkg / f.kernel.provenance["packet"]).write_text(f.packet.model_dump_json(indent=2))
        shutil.copyfile(f.task.reference_path, pkg / "references" / f"{f.kernel.op}.py")
    for module, text in vendored.items():
        (pkg / "kernels" / "_vendor" / f"{module}.py").write_text(text)
    for sub in ("kernels", "kernels/_vendor", "references"):
        (pkg / sub / "__init__.py").write_text("")
    for src, dst in COPIED.items():
        shutil.copyfile(src, pkg / dst)
    specs = {f.kernel.op: op_spec(f.task) for f in kept}
    manifest = Manifest(name, dict(sorted(specs.items())), [f.kernel for f in kept])
    (pkg / MANIFEST).write_text(manifest.to_json())
    (pkg / "__init__.py").write_text(_init_text(manifest))
    (root / "pyproject.toml").write_text(_pyproject_text(manifest))
    (root / "README.md").write_text(_init_text(manifest).split('"""')[1])


def _init_text(manifest: Manifest) -> str:
    names = [n for s in manifest.ops.values() for n in [s.name, *s.aliases]]
    doc = (
        f"{manifest.package}: Triton kernels found by ksearch (`ksearch export`), one function per "
        f"operator: {', '.join(names)}.\n\n"
        "Each call picks the highest-priority kernel verified for this GPU's capability, the dtype and "
        "the shape, caching the choice; when none fits, the task's reference runs, with one warning per "
        "signature. Each operator is a torch.library custom op, so it works inside torch.compile.\n\n"
        f"CPU: kernels verified in the Triton interpreter run on CPU tensors only with "
        f"{manifest.interpret_env}=1 set before import (it turns on TRITON_INTERPRET for the process); "
        "otherwise the reference runs.\n\n"
        f"Why which kernel runs: python -m {manifest.package}.registry select --op OP --shape M=..,N=..\n\n"
        f"Check every kernel against the reference, with the task's tolerances, on its verified and on "
        f"random shapes: python -m {manifest.package}.numerics OP [--device cpu|cuda] [--shapes N] [--seed S]\n"
        f"Time the kernels against the reference, the vendor library and torch.compile (GPU only): "
        f"python -m {manifest.package}.bench OP\n"
    )
    lines = [f'"""{doc}"""', "", "from pathlib import Path", "", "from .runtime import load", ""]
    lines.append("operators = load(__name__, Path(__file__).parent)")
    lines += [f'{n} = operators["{n}"].function' for n in names]
    lines.append(f"__all__ = {['operators', *names]!r}")
    return "\n".join(lines) + "\n"


def _pyproject_text(manifest: Manifest) -> str:
    name = manifest.package
    packages = [name, f"{name}.kernels", f"{name}.kernels._vendor", f"{name}.references"]
    return f"""[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{name.replace("_", "-")}"
version = "0.1.0"
description = "Triton kernels found by ksearch: {", ".join(manifest.ops)}"
requires-python = ">=3.10"
dependencies = ["torch", "triton"]

[tool.setuptools]
packages = {packages!r}

[tool.setuptools.package-data]
"{name}" = ["{MANIFEST}", "packets/*.json"]
""".replace("'", '"')
