"""FlashInfer-Bench and GPU MODE importers: problems written in each format (tests/fixtures/importers/)
are imported into a temporary folder, loaded as tasks and shown to work end to end by evaluating an
honest Triton candidate (and a FlashInfer-Bench Solution / GPU MODE submission converted into one)
on their CPU workloads; problems that cannot be imported honestly are refused with a clear message."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ksearch.errors import TaskError
from ksearch.evidence import FailureClass, Status
from ksearch.harness.evaluate import Evaluator
from ksearch.task import load_task
from ksearch.task.importers import detect_format, import_task
from ksearch.task.importers.flashinfer import packet_to_traces, solution_to_candidate, write_traces
from ksearch.task.importers.gpumode import submission_to_candidate

FIXTURES = Path(__file__).parent / "fixtures" / "importers"
FI = FIXTURES / "flashinfer"
GM = FIXTURES / "gpumode" / "axpb_py"


def _passes(ev: Evaluator, candidate: Path, task) -> None:
    packet = ev.evaluate(candidate, task)
    assert packet.status is Status.PASS, f"{candidate.name}: {packet.failure_class} {packet.message}"
    cpu = [w.name for w in task.workloads(cpu_only=True)]
    assert packet.candidate.shape_suite == cpu and packet.validation.passed
    assert {c.workload for c in packet.validation.outputs} == set(cpu)
    return packet


# ---- FlashInfer-Bench --------------------------------------------------------------------------


def test_flashinfer_var_axis_scalar_input_and_solution(tmp_path, evaluator):
    assert detect_format(FI / "rmsnorm") == "flashinfer"
    assert detect_format(FI / "rmsnorm" / "rmsnorm_h128.json") == "flashinfer"
    imported = import_task(FI / "rmsnorm", out=tmp_path)
    task = load_task(imported.directory)
    spec = task.spec
    assert imported.flags == []
    assert spec.var_axes == ["batch_size"] and spec.const_axes == {"hidden_size": 128}
    # the scalar input is a param passed to the reference, not a tensor of the candidate
    assert spec.params == {"eps": 1e-6} and task.input_names == ["input", "weight"]
    assert (
        spec.entry == "run(input, weight, output)"
        and spec.op_family == "norm"
        and spec.models == "fixture-model"
    )
    assert any("scalar input eps" in line for line in imported.inferred)
    # the workload suite is the JSONL's, uuids kept; small ones run on the CPU
    assert [(w.name, w.axes["batch_size"], w.cpu) for w in spec.workloads] == [
        ("batch_size1", 1, True),
        ("batch_size7", 7, True),
        ("batch_size64", 64, False),
        ("batch_size512", 512, False),
        ("batch_size3000", 3000, False),
    ]
    assert spec.workloads[1].note.endswith("00000000-0000-4000-8000-000000000001")
    assert task.bytes("batch_size7") == (7 * 128 * 2 + 128) * 4
    # the reference is the definition's own run(), with eps from the params
    inputs = task.make_inputs("batch_size7")
    x, w = inputs["input"], inputs["weight"]
    expected = x * (x.pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt() * w
    assert (task.run_reference(inputs)["output"] - expected).abs().max() < 1e-5

    # a destination-passing Solution becomes a candidate that passes
    candidate = solution_to_candidate(
        FI / "rmsnorm" / "solutions" / "rmsnorm_triton_row.json", task, tmp_path
    )
    assert "_fib_entry(input, weight, 1e-06, output)" in candidate.read_text()
    packet = _passes(evaluator, candidate, task)

    # its packet as FlashInfer-Bench Traces: refused while untimed unless asked, one per workload
    with pytest.raises(TaskError, match="not timed"):
        packet_to_traces(packet, task, solution="rmsnorm_triton_row")
    traces = packet_to_traces(packet, task, solution="rmsnorm_triton_row", allow_unmeasured=True)
    assert [t["workload"]["axes"] for t in traces] == [{"batch_size": 1}, {"batch_size": 7}]
    first = traces[0]
    assert first["definition"] == "rmsnorm_h128" and first["solution"] == "rmsnorm_triton_row"
    assert first["workload"]["uuid"] == "00000000-0000-4000-8000-000000000000"
    assert first["workload"]["inputs"]["eps"] == {"type": "scalar", "value": 1e-6}
    assert first["evaluation"]["status"] == "PASSED" and first["evaluation"]["performance"] is None
    assert first["evaluation"]["correctness"]["max_absolute_error"] < 1e-4
    # a numerical failure becomes INCORRECT_NUMERICAL with its errors, and no performance
    failed = packet.model_copy(
        update={"status": Status.FAIL, "failure_class": FailureClass.NUMERICAL_MISMATCH}
    )
    out = write_traces(failed, task, tmp_path / "traces" / "rmsnorm.jsonl", solution="broken")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["evaluation"]["status"] for r in rows] == ["INCORRECT_NUMERICAL"] * 2
    assert all(r["evaluation"]["performance"] is None and r["evaluation"]["correctness"] for r in rows)


def test_flashinfer_value_returning_solution(tmp_path, evaluator):
    task = load_task(import_task(FI / "rmsnorm", out=tmp_path).directory)
    sol = json.loads((FI / "rmsnorm" / "solutions" / "rmsnorm_triton_row.json").read_text())
    source = sol["sources"][0]["content"] + (
        "\n\ndef rmsnorm_returning(input, weight, eps):\n"
        "    output = torch.empty_like(input)\n"
        "    rmsnorm_dps(input, weight, eps, output)\n"
        "    return output\n"
    )
    sol["sources"][0]["content"] = source
    sol["spec"].update(entry_point="main.py::rmsnorm_returning", destination_passing_style=False)
    candidate = solution_to_candidate(sol, task, tmp_path / "returning.py")
    assert "output.copy_(" in candidate.read_text()
    _passes(evaluator, candidate, task)
    cuda = {**sol, "spec": {**sol["spec"], "language": "CUDA"}}
    with pytest.raises(TaskError, match="Triton or TileLang"):
        solution_to_candidate(cuda, task, tmp_path / "cuda.py")


def test_flashinfer_multi_output_with_derived_cpu_workloads(tmp_path, evaluator):
    imported = import_task(FI / "softmax_lse", out=tmp_path)
    task = load_task(imported.directory)
    assert task.output_names == ["probs", "lse"] and task.spec.entry == "run(logits, probs, lse)"
    # the two real workloads are too big for the CPU: derived ones, said so, within the constraint N >= 4
    real = [w for w in task.spec.workloads if not w.cpu]
    derived = task.workloads(cpu_only=True)
    assert [w.axes for w in real] == [{"M": 1024, "N": 4096}, {"M": 4096, "N": 32000}]
    assert len(task.spec.workloads) >= 4 and derived and all(w.name.startswith("cpu_") for w in derived)
    assert all(w.axes["N"] >= 4 for w in derived)
    assert any(w.axes["N"] & (w.axes["N"] - 1) for w in derived)  # a non-power-of-two row length
    assert sum("scaled down" in line for line in imported.inferred) == len(derived)
    refs = task.run_reference(task.make_inputs(derived[0].name))
    assert set(refs) == {"probs", "lse"} and refs["lse"].shape == (derived[0].axes["M"],)
    _passes(evaluator, FI / "softmax_lse" / "candidate.py", task)


def test_flashinfer_identically_zero_output_is_refused(tmp_path):
    with pytest.raises(TaskError, match="output y is identically zero") as err:
        import_task(FI / "zeros", out=tmp_path)
    assert "cannot be searched honestly" in str(err.value) and "--force" in str(err.value)
    assert not (tmp_path / "zeros_like").exists()


def _copy_definition(tmp_path: Path, mutate_rows) -> Path:
    folder = tmp_path / "def"
    shutil.copytree(FI / "rmsnorm", folder)
    wl = folder / "rmsnorm_h128.jsonl"
    rows = [json.loads(line) for line in wl.read_text().splitlines()]
    mutate_rows(rows)
    wl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_flashinfer_varying_scalar_and_missing_safetensors_are_explained(tmp_path):
    def vary(rows):
        rows[2]["workload"]["inputs"]["eps"]["value"] = 1e-5

    with pytest.raises(TaskError, match="scalar input 'eps' is not the same in every workload"):
        import_task(_copy_definition(tmp_path / "a", vary), out=tmp_path / "out")

    def safetensors(rows):
        rows[0]["workload"]["inputs"]["weight"] = {
            "type": "safetensors",
            "path": "blobs/w.safetensors",
            "tensor_key": "weight",
        }

    with pytest.raises(TaskError, match=r"blobs/w\.safetensors \(key 'weight'\), which is not there"):
        import_task(_copy_definition(tmp_path / "b", safetensors), out=tmp_path / "out")


# ---- GPU MODE ----------------------------------------------------------------------------------


def test_gpumode_problem_with_tests_and_benchmarks(tmp_path, evaluator):
    assert detect_format(GM) == "gpumode" and detect_format(GM / "reference.py") == "gpumode"
    imported = import_task(GM, out=tmp_path)
    task = load_task(imported.directory)
    spec = task.spec
    assert imported.flags == [] and spec.var_axes == ["m", "n"]
    # `out`, preallocated by generate_input and written by ref_kernel, is an output, not an input
    assert task.input_names == ["a", "b"] and task.output_names == ["out"]
    assert [t.shape for t in (spec.inputs["a"], spec.inputs["b"], spec.outputs["out"])] == [
        ["m", "n"],
        ["n"],
        ["m", "n"],
    ]
    # tests then benchmarks, a benchmark equal to a test kept once
    assert [(w.name, w.axes, w.cpu) for w in spec.workloads] == [
        ("test0", {"m": 8, "n": 96}, True),
        ("test1", {"m": 5, "n": 33}, True),
        ("bench0", {"m": 1024, "n": 4096}, False),
        ("bench2", {"m": 4096, "n": 8192}, False),
    ]
    assert "also bench1" in spec.workloads[0].note
    # distributions read off generate_input: randn for a, uniform [0, 1) for b
    assert spec.inputs["a"].distribution.kind == "normal" and spec.inputs["b"].distribution.kind == "uniform"
    inputs = task.make_inputs("test1")
    assert (task.run_reference(inputs)["out"] - (2 * inputs["a"] + inputs["b"])).abs().max() == 0

    _passes(evaluator, GM / "candidate.py", task)
    wrapped = submission_to_candidate(GM / "submission.py", task, tmp_path / "submission_candidate.py")
    text = wrapped.read_text()
    assert "custom_kernel((a, b, out,))" in text and "# (ksearch) from task import" in text
    _passes(evaluator, wrapped, task)


def test_gpumode_problem_without_specs_is_explained(tmp_path):
    folder = tmp_path / "bad_py"
    shutil.copytree(GM, folder)
    (tmp_path / "utils.py").write_text((GM.parent / "utils.py").read_text())
    (folder / "task.yml").write_text("lang: py\n")
    with pytest.raises(TaskError, match="lists no tests: or benchmarks: specs"):
        import_task(folder, out=tmp_path / "out")


def test_flashinfer_constraints_are_read_not_evaluated(tmp_path):
    from ksearch.task.importers.flashinfer import parse_constraint

    # what constraints use evaluates as Python would: chained comparisons, and/or/not, % // and parentheses
    text = "1 <= M < N and N % 4 == 0 or not (H // 2 >= 3) and -M != H - 2*M"
    check = parse_constraint(text, ["M", "N", "H"])
    grid = [{"M": m, "N": n, "H": h} for m in (1, 2, 5) for n in (2, 4, 8, 9) for h in (1, 6, 7)]
    assert [bool(check(v)) for v in grid] == [bool(eval(text, {}, v)) for v in grid]  # noqa: S307  (our own text)
    assert any(check(v) for v in grid) and not all(check(v) for v in grid)
    assert parse_constraint("max(M, N) >= 4", ["M", "N"])({"M": 1, "N": 4})

    # an escape from eval's emptied builtins, an attribute, a call or a subscript is refused before it runs
    for expr, why in [
        ("().__class__.__bases__[0].__subclasses__()", "uses a call to '().__class__"),
        ("N.__class__ is int", "uses the comparison Is"),
        ("N.real > 1", "uses a Attribute expression"),
        ("len([N]) > 0", "uses a call to 'len'"),
        ("N > [1][0]", "uses a Subscript expression"),
        ("N > 'a'", "uses the literal 'a'"),
    ]:
        with pytest.raises(TaskError, match=r"^constraint .*" + re.escape(why)):
            parse_constraint(expr, ["N"])
    with pytest.raises(TaskError, match="names 'K', which is not an axis"):
        parse_constraint("K > 1", ["N"])
    with pytest.raises(TaskError, match="exponent .* is larger than"):  # a power tower would hang eval
        parse_constraint("N < 9**9**9", ["N"])({"N": 1})

    # and a definition carrying one is refused at import, with nothing run and nothing written
    folder = tmp_path / "def"
    shutil.copytree(FI / "softmax_lse", folder)
    definition = json.loads((folder / "softmax_lse.json").read_text())
    marker = tmp_path / "escaped"
    definition["constraints"] = ["N >= 4", f"__import__('pathlib').Path({str(marker)!r}).touch() == 0"]
    (folder / "softmax_lse.json").write_text(json.dumps(definition))
    with pytest.raises(TaskError, match=r"constraint .*a call to '__import__\('pathlib'\).Path"):
        import_task(folder, out=tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_flashinfer_flops_are_counted_on_the_staged_task(tmp_path):
    definition = {
        "name": "tiny_gemm",
        "op_type": "gemm",
        "axes": {
            "M": {"type": "var"},
            "N": {"type": "const", "value": 8},
            "K": {"type": "const", "value": 16},
        },
        "inputs": {
            "a": {"shape": ["M", "K"], "dtype": "float32"},
            "b": {"shape": ["N", "K"], "dtype": "float32"},
        },
        "outputs": {"c": {"shape": ["M", "N"], "dtype": "float32"}},
        "reference": "def run(a, b):\n    return a @ b.T\n",
    }
    (tmp_path / "tiny_gemm.json").write_text(json.dumps(definition))
    rows = [{"uuid": f"u{m}", "axes": {"M": m}, "inputs": {}} for m in (3, 5, 7, 1024)]
    (tmp_path / "tiny_gemm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    imported = import_task(tmp_path / "tiny_gemm.json", out=tmp_path / "out")
    task = load_task(imported.directory)
    # torch's FLOP counter saw 2*K per output element of the matmul; the formula holds at every size
    assert task.spec.flops_formula == "32*(M)*(N)"
    assert task.flops("M1024") == 2 * 1024 * 8 * 16
    assert imported.inferred[-1].startswith("flops: estimated from torch's FLOP counter on workload M3 as 32")


def test_every_float_dtype_gets_a_nonzero_tolerance_and_integers_stay_exact():
    from ksearch.task.importers.common import tolerances_for
    from ksearch.task.spec import FLOAT_DTYPES, INT_DTYPES

    tol = tolerances_for(FLOAT_DTYPES | INT_DTYPES)
    assert all(tol[d]["atol"] > 0 and tol[d]["rtol"] > 0 for d in FLOAT_DTYPES)  # float64 was exact
    assert all(tol[d]["atol"] == 0 and tol[d]["rtol"] == 0 for d in INT_DTYPES)
