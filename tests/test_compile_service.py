"""The compile service: cache, parallel pool, per-compile timeout, diagnostics, and the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

from ksearch.compile import CompileRequest, compile_many
from ksearch.evidence import FailureClass

CANDIDATES = Path(__file__).parent / "candidates" / "triton"


def req(name, target="b200", task="rmsnorm", dtype="float16"):
    return CompileRequest(source_path=str(CANDIDATES / name), task=task, target=target, dtype=dtype)


def test_cache_returns_the_stored_result_and_artifacts(tmp_path):
    (cold,) = compile_many([req("rmsnorm_rows.py")], cache_dir=tmp_path)
    assert cold.ok and not cold.cached and cold.key
    (warm,) = compile_many([req("rmsnorm_rows.py")], cache_dir=tmp_path)
    assert warm.cached and warm.key == cold.key
    assert warm.kernels == cold.kernels
    assert all(p.exists() for p in warm.artifact_paths("ptx"))
    (other,) = compile_many([req("rmsnorm_rows.py", dtype="float32")], cache_dir=tmp_path)
    assert not other.cached and other.key != cold.key  # dtype is part of the key


def test_a_run_s_workloads_are_the_only_ones_compiled(tmp_path):
    wide = "llama3_70b_prefill_m1024_n8192"
    narrow = req("rmsnorm_rows.py").model_copy(update={"workloads": (wide,)})
    (full,) = compile_many([req("rmsnorm_rows.py")], cache_dir=tmp_path)
    (only,) = compile_many([narrow], cache_dir=tmp_path)
    assert only.ok and not only.cached and only.key != full.key  # the workloads are part of the key
    grids = {w for k in only.kernels for w in k.specialization.get("grids", {})}
    assert grids == {wide} and len(only.kernels) < len(full.kernels)


def test_hanging_compile_is_killed_at_its_timeout_and_the_pool_goes_on(tmp_path):
    results = compile_many(
        [req("hang_in_run.py"), req("rmsnorm_rows.py", target="h100")],
        cache_dir=tmp_path,
        jobs=2,
        timeout_s=15,  # the honest compile took 8.2 s once, on two cores shared with the rest of the suite
    )
    hang, fine = results
    assert hang.failure_class is FailureClass.COMPILE_TIMEOUT and not hang.ok
    assert "timeout" in hang.message
    assert fine.ok
    (again,) = compile_many([req("hang_in_run.py")], cache_dir=tmp_path, timeout_s=3)
    assert not again.cached  # a timeout is not cached


def test_syntax_and_type_errors_are_located_diagnostics(tmp_path):
    syn, typ = compile_many(
        [req("syntax_error.py"), req("jit_type_error.py", task="matmul", dtype="float16")],
        cache_dir=tmp_path,
        jobs=2,
    )
    for r, name in ((syn, "syntax_error.py"), (typ, "jit_type_error.py")):
        assert not r.ok and r.failure_class in (FailureClass.COMPILE_ERROR, FailureClass.IMPORT_ERROR)
        d = r.diagnostics[0]
        assert d.file.endswith(name) and d.line and d.message
        assert "Traceback" not in d.message


def test_compile_cli_prints_audits_as_json(tmp_path):
    env = {**os.environ, "KSEARCH_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ksearch",
            "compile",
            str(CANDIDATES / "matmul_naive.py"),
            "--task",
            "matmul",
            "--target",
            "h100",
            "--dtype",
            "float16",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)
    assert entry["compile"]["ok"]
    failing = [v["failure_class"] for v in entry["audit"]["verdicts"] if not v["ok"]]
    assert "audit:missing_tensor_core_path" in failing
    both = subprocess.run(
        [
            sys.executable,
            "-m",
            "ksearch",
            "compile",
            str(CANDIDATES / "matmul_naive.py"),
            "--task",
            "matmul",
            "--target",
            "h100,mi355x",
            "--dtype",
            "float16",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert both.returncode == 0, both.stderr
    assert [e["compile"]["target"] for e in json.loads(both.stdout)] == ["h100", "mi355x"]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "ksearch",
            "compile",
            str(CANDIDATES / "matmul_naive.py"),
            "--task",
            "matmul",
            "--target",
            "b300",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode != 0 and bad.stderr.startswith("error:") and "b300" in bad.stderr
