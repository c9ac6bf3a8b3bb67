"""`ksearch tasks import FOLDER`: every problem in its own process under a memory and a time limit.
A syntax error, a memory hog and a hang are refused with their reason while the others import; a
degenerate problem is reported and not written; the table fits 80 columns and --json says the same."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ksearch.task import load_task
from ksearch.task.importers.bulk import import_all, is_collection, problems_in

TESTS = Path(__file__).parent
KB = TESTS / "fixtures" / "kernelbench"
FI = TESTS / "fixtures" / "importers" / "flashinfer"

_TAIL = """
class Model(torch.nn.Module):
    def forward(self, x):
        return x * 2


def get_inputs():
    return [torch.randn(4, 8)]


def get_init_inputs():
    return []
"""
BROKEN = "import torch\n\nclass Model(torch.nn.Module)\n    pass\n"
HOG = (
    "import torch\n\n_hoard = []\nwhile True:  # 64 MiB more, touched, until something stops it\n"
    "    _hoard.append(bytearray(64 << 20))\n" + _TAIL
)
HANG = "import time\n\nimport torch\n\nwhile True:\n    time.sleep(0.05)\n" + _TAIL


def _ksearch(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "ksearch", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_a_kernelbench_folder_imports_the_good_and_refuses_the_bad_each_with_its_reason(tmp_path):
    folder = tmp_path / "level1"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(KB / "softmax_rows.py", folder / "good.py")
    shutil.copy(
        KB / "softmax_rows.py", folder / "sub" / "good.py"
    )  # the same task name: imported as sub_good
    shutil.copy(KB / "zero_output.py", folder / "zero.py")
    (folder / "broken.py").write_text(BROKEN + _TAIL)
    (folder / "hog.py").write_text(HOG)
    (folder / "notes.py").write_text("print('a helper, not a problem')\n")
    assert is_collection(folder) and not is_collection(folder / "good.py")
    fmt, problems, skipped = problems_in(folder)
    assert fmt == "kernelbench" and [p.name for p in skipped] == ["notes.py"] and len(problems) == 5

    out = tmp_path / "tasks"
    report = import_all(folder, out=out, memory_mb=1200, timeout_s=120)
    got = {p.problem: p for p in report.problems}
    assert list(got) == ["broken.py", "good.py", "hog.py", "sub/good.py", "zero.py"]
    assert report.counts == {"imported": 2, "target_only": 0, "refused": 2, "degenerate": 1}
    assert report.skipped == ["notes.py"]

    assert got["good.py"].status == "imported" and got["good.py"].task == "good"
    assert (
        got["sub/good.py"].task == "sub_good"
        and "good is the task of good.py" in got["sub/good.py"].inferred[0]
    )
    assert load_task(out / "sub_good").name == "sub_good" and load_task(out / "good").name == "good"
    broken = got["broken.py"]
    assert broken.status == "refused" and "SyntaxError" in broken.reason and broken.killed is None
    hog = got["hog.py"]  # killed for memory, said so, and the problems after it still ran
    assert hog.status == "refused" and hog.killed == "memory" and hog.peak_rss_mb > 1200
    assert hog.reason.startswith("killed for memory: over the 1200 MiB limit")
    zero = got["zero.py"]  # degenerate: reported with its flag, not written without --force
    assert zero.status == "degenerate" and zero.directory is None and "identically zero" in zero.reason
    assert sorted(p.name for p in out.iterdir()) == [
        "good",
        "sub_good",
    ]  # no staging left behind, nothing else


def test_a_hang_is_killed_for_time_and_the_table_fits_80_columns(tmp_path):
    folder = tmp_path / "problems"
    folder.mkdir()
    (folder / "hang.py").write_text(HANG)
    (folder / "broken.py").write_text(BROKEN + _TAIL)
    proc = _ksearch("tasks", "import", folder, "--out", tmp_path / "tasks", "--timeout", 3)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # every line fits 80 columns but the two that give the folders' whole paths (copyable as they are)
    assert lines and all(len(line) <= 80 for line in lines if str(tmp_path) not in line), proc.stdout
    assert sum(str(tmp_path) in line for line in lines) == 2
    assert "imported 0   target-only 0   refused 2   degenerate 0" in proc.stdout
    hang = next(line for line in lines if " hang.py " in line)
    assert hang.startswith("refused") and "killed for time: over the 3 s limit (--timeout)" in hang
    broken = next(line for line in lines if " broken.py " in line)
    assert "SyntaxError" in broken and str(folder) not in broken  # the folder's path is said once, above
    assert not (tmp_path / "tasks").exists() or not any((tmp_path / "tasks").iterdir())


def _definition(name: str, n: int, k: int) -> dict:
    return {
        "name": name,
        "op_type": "gemm",
        "axes": {
            "M": {"type": "var"},
            "N": {"type": "const", "value": n},
            "K": {"type": "const", "value": k},
        },
        "inputs": {
            "A": {"shape": ["M", "K"], "dtype": "float32"},
            "B": {"shape": ["N", "K"], "dtype": "float32"},
        },
        "outputs": {"C": {"shape": ["M", "N"], "dtype": "float32"}},
        "reference": "import torch\n\ndef run(A, B):\n    return torch.matmul(A, B.T)\n",
    }


def _workloads(name: str, ms: list[int]) -> str:
    return "".join(
        json.dumps(
            {
                "definition": name,
                "workload": {
                    "uuid": f"{name}-{m}",
                    "axes": {"M": m},
                    "inputs": {"A": {"type": "random"}, "B": {"type": "random"}},
                },
            }
        )
        + "\n"
        for m in ms
    )


def test_a_flashinfer_dataset_imports_definitions_with_their_workloads_as_json(tmp_path):
    data = tmp_path / "flashinfer_trace"
    for sub in (
        "definitions/gemm",
        "definitions/rmsnorm",
        "definitions/misc",
        "workloads/gemm",
        "workloads/rmsnorm",
        "workloads/misc",
    ):
        (data / sub).mkdir(parents=True)
    (data / "definitions/gemm/gemm_n512_k512.json").write_text(
        json.dumps(_definition("gemm_n512_k512", 512, 512))
    )
    (data / "workloads/gemm/gemm_n512_k512.jsonl").write_text(
        _workloads("gemm_n512_k512", [64, 128, 1000, 2048])
    )
    (data / "definitions/gemm/gemm_n64_k96.json").write_text(json.dumps(_definition("gemm_n64_k96", 64, 96)))
    shutil.copy(FI / "rmsnorm" / "rmsnorm_h128.json", data / "definitions/rmsnorm/")
    shutil.copy(FI / "rmsnorm" / "rmsnorm_h128.jsonl", data / "workloads/rmsnorm/")
    shutil.copy(FI / "zeros" / "zeros_like.json", data / "definitions/misc/")
    shutil.copy(FI / "zeros" / "zeros_like.jsonl", data / "workloads/misc/")
    assert problems_in(data)[0] == "flashinfer"

    proc = _ksearch("tasks", "import", data, "--out", tmp_path / "tasks", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(
        proc.stdout
    )  # nothing but the JSON on stdout (the bar, on a terminal, goes to stderr)
    got = {p["problem"]: p for p in report["problems"]}
    assert report["format"] == "flashinfer" and report["counts"] == {
        "imported": 2,
        "target_only": 0,
        "refused": 1,
        "degenerate": 1,
    }
    gemm = got["definitions/gemm/gemm_n512_k512.json"]
    assert (
        gemm["status"] == "imported"
        and gemm["inferred"][0] == "workloads from gemm_n512_k512.jsonl (4 line(s))"
    )
    assert got["definitions/rmsnorm/rmsnorm_h128.json"]["status"] == "imported"
    orphan = got["definitions/gemm/gemm_n64_k96.json"]
    assert orphan["status"] == "refused" and "no workload file" in orphan["reason"]
    assert got["definitions/misc/zeros_like.json"]["status"] == "degenerate"
    task = load_task(tmp_path / "tasks" / "gemm_n512_k512")
    assert task.spec.const_axes == {"N": 512, "K": 512}
    assert all(w.axes["M"] <= 8 for w in task.workloads(cpu_only=True))


def test_a_single_problem_path_is_still_a_single_import(tmp_path):
    assert not is_collection(KB / "softmax_rows.py")
    assert not is_collection(FI / "rmsnorm")  # a folder holding one definition is one problem
    proc = _ksearch("tasks", "import", FI / "rmsnorm", "--out", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    single = json.loads(proc.stdout)
    assert single["name"] == "rmsnorm_h128" and Path(single["directory"]) == tmp_path / "rmsnorm_h128"


def test_the_table_gives_each_result_one_line_at_80_columns_and_reads_target_only(tmp_path):
    from rich.console import Console

    from ksearch.task.importers.bulk import BulkReport, ProblemResult, _target_only, render_report

    task_yaml = tmp_path / "task.yaml"
    task_yaml.write_text(
        "name: t\ntarget_only:\n  reason: the reference calls aiter\n  targets: [mi355x, mi300x]\n"
    )
    assert _target_only(task_yaml) == "the reference calls aiter (verified on mi355x, mi300x)"
    task_yaml.write_text("name: t\n")
    assert _target_only(task_yaml) is None

    root = "/data/flashinfer_trace"
    long = "a safetensors file missing for input 'kv_indptr': workload 1234 reads it from " + "x/" * 40
    report = BulkReport(
        root=root,
        format="flashinfer",
        out="/tasks",
        memory_mb=2048,
        timeout_s=60,
        problems=[
            ProblemResult(
                problem="definitions/gemm/gemm_n4096_k4096.json", status="imported", task="gemm_n4096_k4096"
            ),
            ProblemResult(
                problem="definitions/moe/mixed.json",
                status="target_only",
                task="mixed",
                reason="the reference calls aiter (verified on mi355x)",
            ),
            ProblemResult(
                problem="definitions/gqa_paged/gqa_paged_decode_h32_kv4_d128_ps1.json",
                status="refused",
                reason=f"definition gqa_paged_decode_h32_kv4_d128_ps1: {long}",
            ),
            ProblemResult(
                problem="definitions/misc/zeros_like.json",
                status="degenerate",
                task="zeros_like",
                reason="output y is identically zero (not written; --force writes it with the flags)",
            ),
        ],
        seconds=1.5,
    )
    console = Console(width=80, record=True, file=open(os.devnull, "w"))
    console.print(render_report(report))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[3] == "imported 1   target-only 1   refused 1   degenerate 1"
    body = lines[5:]  # one line per problem, grouped by result, the shared definitions/ said in the header
    assert "problem (in definitions/)" in lines[4] and len(body) == 4
    assert [line.split()[0] for line in body] == ["imported", "target-only", "refused", "degenerate"]
    assert "mixed: the reference calls aiter" in body[1]
    assert "…_decode_h32_kv4_d128_ps1.json  a safetensors file missing" in body[2] and body[2].endswith("…")
