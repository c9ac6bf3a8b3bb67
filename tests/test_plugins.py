"""Plugins through entry points: a third-party compiler and proposer, installed for real.

The plugin (tests/fixtures/plugin_pkg/dummy_ksearch_plugin.py) is installed the way pip leaves a
package: the module next to a `dummy_ksearch_plugin-0.1.dist-info/` holding METADATA and
entry_points.txt, in a directory on the PYTHONPATH of the real command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ksearch import plugins
from ksearch.compile import compiler, detect_language, triton_backend
from ksearch.errors import ConfigError
from ksearch.evidence import known_languages
from ksearch.propose.registry import proposer_backend, spec_help
from ksearch.propose.settings import ProposerConfig
from ksearch.task.importers import formats

FIXTURE = Path(__file__).parent / "fixtures" / "plugin_pkg" / "dummy_ksearch_plugin.py"
MARK = "# written by the dummy ksearch plugin"
ENTRY_POINTS = """\
[ksearch.compilers]
dummy = dummy_ksearch_plugin:COMPILER

[ksearch.proposers]
dummy = dummy_ksearch_plugin:PROPOSER
"""
BROKEN_ENTRY_POINTS = """\
[ksearch.compilers]
broken = broken_ksearch_plugin:COMPILER
triton = broken_ksearch_plugin:COMPILER

[ksearch.proposers]
ghost = no_such_module_anywhere:PROPOSER
notone = odd_ksearch_plugin:NOT_A_BACKEND

[ksearch.importers]
ghostformat = no_such_module_anywhere
"""


def install(site: Path, dist: str, entry_points: str, modules: dict[str, str]) -> Path:
    """What `pip install --target site` leaves: the modules and a dist-info naming the entry points."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)
    return site


@pytest.fixture
def dummy_site(tmp_path) -> Path:
    return install(
        tmp_path / "site", "dummy_ksearch_plugin", ENTRY_POINTS, {"dummy_ksearch_plugin": FIXTURE.read_text()}
    )


@pytest.fixture
def broken_site(tmp_path) -> Path:
    modules = {
        "broken_ksearch_plugin": "raise ImportError('this plugin needs libfoo, which is not installed')\n",
        "odd_ksearch_plugin": "NOT_A_BACKEND = 42\n",
    }
    return install(tmp_path / "broken", "broken_ksearch_plugin", BROKEN_ENTRY_POINTS, modules)


@pytest.fixture
def on_path(monkeypatch):
    """Put a site directory on this process's path, with the plugin caches fresh before and after."""

    def clear() -> None:
        plugins._entry_points.cache_clear()
        plugins._load.cache_clear()

    def add(site: Path) -> None:
        monkeypatch.syspath_prepend(str(site))
        clear()

    yield add
    clear()


def ksearch(site: Path, tmp_path: Path, *args):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "KSEARCH_CACHE_DIR": str(tmp_path / "cache"),
        "KSEARCH_CACHE": str(tmp_path / "cache"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "ksearch", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_a_plugin_compiler_compiles_through_ksearch_compile(dummy_site, tmp_path):
    candidate = tmp_path / "kernel.dummy"
    candidate.write_text("line one\nline two\nline three\n")
    proc = ksearch(
        dummy_site, tmp_path, "compile", candidate, "--task", "rmsnorm", "--target", "h100", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    [entry] = json.loads(proc.stdout)
    result = entry["compile"]
    assert result["ok"] and result["language"] == "dummy" and result["target"] == "h100"
    assert [k["name"] for k in result["kernels"]] == ["dummy_kernel_3_lines"]
    assert result["message"] == "compiled by the dummy plugin for task rmsnorm"
    assert result["toolchain"] == {"dummy-cc": "0.1"}  # the plugin's toolchain keys its cache entries
    assert Path(result["artifacts"]["compile_log"]).read_text().startswith("dummy-cc ")


@pytest.mark.slow  # a search, in a subprocess
def test_a_plugin_proposer_runs_a_search(dummy_site, tmp_path):
    logs = tmp_path / "logs"
    config = tmp_path / "one_target.yaml"
    config.write_text("targets: [h100]\n")  # one compile per candidate: the search is what is tested
    proc = ksearch(
        dummy_site,
        tmp_path,
        "run",
        config,
        "--proposer",
        "dummy",
        "--log-dir",
        logs,
        "--budget-evals",
        "2",
        "--device",
        "cpu",
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = list(logs.iterdir())
    rows = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert rows[0]["payload"]["config"]["proposer"]["backend"] == "dummy"
    steps = [r["payload"] for r in rows if r["kind"] == "step"]
    assert len(steps) == 2
    for step in steps:  # each evaluated candidate is the plugin's: signed by it, with a verdict
        assert (run_dir / step["blob"]).read_text().rstrip().endswith(MARK)
        assert step["packet_id"] and step["targets"]
    calls = [r["payload"]["summary"] for r in rows if r["kind"] == "proposer_call"]
    assert calls.count("dummy plugin: signed the candidate") == 2
    assert sum(r["kind"] == "attempt" for r in rows) >= 2


def test_plugins_are_listed_without_being_imported(dummy_site, on_path):
    on_path(dummy_site)
    assert "dummy" in known_languages() and "dummy (plugin)" in spec_help()
    assert "dummy_ksearch_plugin" not in sys.modules  # named, not loaded
    assert detect_language(Path("k.dummy"), "") == "dummy"
    assert detect_language(Path("k.py"), "import triton") == "triton"
    assert compiler("dummy").cannot_run("cuda") == "dummy candidates are compiled only"
    assert ProposerConfig.model_validate("dummy").backend == "dummy"


def test_a_broken_plugin_is_left_out_with_a_warning_naming_it(broken_site, on_path):
    on_path(broken_site)
    # the commands that do not use it work; the ones that need every compiler warn about it once
    assert ProposerConfig.model_validate("openai:gpt-5").model == "gpt-5"
    with pytest.warns(plugins.PluginWarning, match=r"'broken'.*broken-ksearch-plugin 0\.1.*libfoo"):
        assert detect_language(Path("k.py"), "import triton") == "triton"
    with pytest.warns(plugins.PluginWarning, match="'triton'.*is built in"):
        assert plugins.load_plugin(plugins.COMPILERS, "triton", object, ("triton",)) is None
    assert compiler("triton") is triton_backend.COMPILER  # a plugin cannot replace a built-in
    with pytest.warns(plugins.PluginWarning, match="'ghost'.*ModuleNotFoundError"):
        with pytest.raises(ConfigError, match="'ghost' is not one of"):
            proposer_backend("ghost")
    with pytest.warns(plugins.PluginWarning, match="'notone'.*not a ProposerBackend"):
        with pytest.raises(ConfigError):
            proposer_backend("notone")
    with pytest.raises(ConfigError, match="no compiler for language 'broken'"):
        compiler("broken")
    assert "ghostformat" in formats()


def test_a_broken_plugin_named_on_the_command_line_is_a_clean_error(broken_site, tmp_path):
    proc = ksearch(broken_site, tmp_path, "run", "--proposer", "ghost", "--log-dir", tmp_path / "logs")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "ksearch plugin 'ghost'" in proc.stderr  # the warning names the plugin
    assert proc.stderr.strip().splitlines()[-1].startswith("error:") and "ghost" in proc.stderr
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())
