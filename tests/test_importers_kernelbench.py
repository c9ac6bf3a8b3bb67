"""KernelBench problems imported as tasks: shapes, weights and outputs read off the running problem,
CPU workloads derived from its size constants, an honest kernel verified on the result, a problem
whose output ignores its input refused, and a short search on an imported task."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ksearch.errors import TaskError
from ksearch.evidence import Status
from ksearch.task import load_task
from ksearch.task.importers import import_task

FIXTURES = Path(__file__).parent / "fixtures" / "kernelbench"
KERNELS = FIXTURES / "kernels"
IMPORTERS = Path(__file__).parent / "fixtures" / "importers"


def imported(name, tmp_path, **kw):
    result = import_task(FIXTURES / f"{name}.py", fmt="kernelbench", out=tmp_path, **kw)
    return result, load_task(result.directory)


def test_a_single_op_becomes_a_task_and_an_honest_kernel_passes_it(tmp_path, evaluator):
    result, task = imported("softmax_rows", tmp_path)
    assert task.input_names == ["x"] and task.output_names == ["out"] and task.dtypes == ["float32"]
    assert {a for a in task.spec.axes} == {"BATCH_SIZE", "DIM"}
    assert task.workload("kernelbench").axes == {"BATCH_SIZE": 16, "DIM": 16384}
    assert len(task.workloads(cpu_only=True)) >= 3
    assert any("BATCH_SIZE" not in line and "batch_size=16" in line for line in result.inferred)
    # softmax has no matmul for torch's FLOP counter: one FLOP per output element, said so
    assert task.spec.flops_formula == "(BATCH_SIZE)*(DIM)" and "FLOPS" not in task.spec.axes
    assert any(line.startswith("flops: estimated as one per output element") for line in result.inferred)
    packet = evaluator.evaluate(Path(__file__).parent / "honest" / "softmax_rowblock.py", task)
    assert packet.status is Status.PASS, packet.message
    assert set(packet.validation.workloads_checked) == {w.name for w in task.workloads(cpu_only=True)}


def test_weights_become_inputs_and_the_reference_is_the_problems_forward(tmp_path, evaluator):
    result, task = imported("linear_bias_relu", tmp_path)
    assert task.input_names == ["x", "bias", "linear_weight", "linear_bias"]
    assert task.spec.entry.startswith("run(x, bias, linear_weight, linear_bias, out)")
    # the reference at the problem's own size is its Model with these weights
    wl = task.workload("kernelbench")
    inputs = task.make_inputs(wl, "normal", 0)
    spec = importlib.util.spec_from_file_location("kb_problem", FIXTURES / "linear_bias_relu.py")
    problem = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(problem)
    model = problem.Model(1024, 512)
    model.load_state_dict(
        {
            "bias": inputs["bias"],
            "linear.weight": inputs["linear_weight"],
            "linear.bias": inputs["linear_bias"],
        }
    )
    with torch.no_grad():
        assert torch.equal(task.run_reference(inputs, workload=wl)["out"], model(inputs["x"]))
    assert task.flops(wl, "float32") == 2 * 128 * 1024 * 512  # flop_counter's count of the matmul
    packet = evaluator.evaluate(KERNELS / "linear_bias_relu.py", task)
    assert packet.status is Status.PASS, packet.message


def test_a_multi_output_problem_gets_one_output_per_returned_tensor(tmp_path, evaluator):
    result, task = imported("row_stats", tmp_path)
    assert task.output_names == ["out0", "out1"]
    assert task.spec.inputs["x"].distribution.kind == "uniform"  # torch.rand in get_inputs
    packet = evaluator.evaluate(KERNELS / "row_stats.py", task)
    assert packet.status is Status.PASS, packet.message
    wrong = tmp_path / "swapped.py"
    wrong.write_text(
        (KERNELS / "row_stats.py").read_text().replace("(M,)](x, out0, out1", "(M,)](x, out1, out0")
    )
    assert evaluator.evaluate(wrong, task).status is not Status.PASS


def test_an_output_that_ignores_its_input_is_refused_at_import(tmp_path):
    with pytest.raises(TaskError, match="identically zero.*Nothing was written"):
        imported("zero_output", tmp_path)
    assert not (tmp_path / "zero_output").exists()
    result, _ = imported("zero_output", tmp_path, force=True)
    assert (
        result.flags
        and "FLAGGED AT IMPORT" in yaml.safe_load((result.directory / "task.yaml").read_text())["description"]
    )


@pytest.mark.parametrize(
    "problem,why",
    [
        ("ignores_input", "does not depend on the inputs"),
        ("one_valued_input", "holds one value everywhere"),
        ("noisy_reference", "differs between two runs of the reference"),
    ],
)
def test_every_honesty_flag_refuses_its_problem(problem, why, tmp_path):
    with pytest.raises(TaskError, match=why):
        imported(problem, tmp_path)
    assert not (tmp_path / problem).exists()


def test_the_import_command_prints_what_it_inferred_and_refuses_a_flagged_problem(tmp_path):
    def ksearch(*args):
        return subprocess.run(
            [sys.executable, "-m", "ksearch", *args], capture_output=True, text=True, timeout=300
        )

    ok = ksearch(
        "tasks",
        "import",
        str(FIXTURES / "row_stats.py"),
        "--format",
        "kernelbench",
        "--out",
        str(tmp_path),
        "--name",
        "rowstats",
    )
    assert ok.returncode == 0, ok.stderr
    assert (
        "task rowstats" in ok.stdout
        and "inferred:" in ok.stdout
        and (tmp_path / "rowstats" / "task.yaml").is_file()
    )
    bad = ksearch(
        "tasks", "import", str(FIXTURES / "zero_output.py"), "--format", "kernelbench", "--out", str(tmp_path)
    )
    assert bad.returncode != 0 and "identically zero" in bad.stderr and "Traceback" not in bad.stderr


SEARCHED = [  # (problem, format, a working candidate the scripted LLM writes) for each format
    (FIXTURES / "softmax_rows.py", "kernelbench", Path(__file__).parent / "honest" / "softmax_rowblock.py"),
    (
        IMPORTERS / "flashinfer" / "softmax_lse",
        "flashinfer",
        IMPORTERS / "flashinfer" / "softmax_lse" / "candidate.py",
    ),
    (IMPORTERS / "gpumode" / "axpb_py", "gpumode", IMPORTERS / "gpumode" / "axpb_py" / "candidate.py"),
]


@pytest.mark.skipif(importlib.util.find_spec("openai") is None, reason="needs the llm extra (openai SDK)")
@pytest.mark.parametrize("problem,fmt,kernel", SEARCHED, ids=[f for _, f, _ in SEARCHED])
def test_an_imported_task_is_searched_for_a_few_iterations(problem, fmt, kernel, tmp_path, monkeypatch):
    from llm_server import FakeLLM

    from ksearch.log import iter_rows, verify_log
    from ksearch.search.run import start_run

    result = import_task(problem, fmt=fmt, out=tmp_path)
    task = load_task(result.directory)
    cfg = {
        "task": str(result.directory),
        "dtype": task.default_dtype,
        "targets": ["h100"],
        "device": "cpu",
        "seed": 1,
        "budget": {"evaluations": 2, "wall_s": 600},
        "search": {"islands": 1, "migrate_every": 2, "stagnation": 1, "max_per_visit": 2, "batch": 2},
        "eval": {
            "seeds": [0],
            "workloads": [w.name for w in task.workloads(cpu_only=True)][:2],
            "targets": "best",
        },
    }
    path = tmp_path / "run.yaml"
    with FakeLLM() as llm:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        llm.script.kernels = [kernel.read_text()]
        cfg["proposer"] = {
            "backend": "openai-compatible",
            "model": "local",
            "base_url": llm.url + "/v1",
            "max_retries": 1,
            "timeout_s": 10,
        }
        path.write_text(yaml.safe_dump(cfg))
        run = start_run(path, log_dir=tmp_path / "runs")
    assert verify_log(run.run_dir).ok
    steps = [line.row["payload"] for line, _ in iter_rows(run.run_dir) if line.row["kind"] == "step"]
    # each candidate verified on the imported task; only the h100 audit may object (the FlashInfer
    # fixture's candidate keeps a whole row in registers and spills when compiled for sm_90a)
    assert len(steps) == 2, steps
    assert all(s["passed"] or s["failure_class"].startswith("audit:") for s in steps), [
        s["message"] for s in steps
    ]
    packets = {
        line.row["payload"]["packet_id"]: line.row["payload"]
        for line, _ in iter_rows(run.run_dir)
        if line.row["kind"] == "attempt"
    }
    assert all(packets[s["packet_id"]]["validation"]["passed"] for s in steps)


def test_a_candidate_in_kernelbench_form_is_evaluated_through_its_modelnew(tmp_path, evaluator):
    from ksearch.evidence import FailureClass

    _, task = imported("linear_bias_relu", tmp_path)
    packet = evaluator.evaluate(KERNELS / "linear_bias_relu_modelnew.py", task)
    assert packet.status is Status.PASS, packet.message
    torch_only = evaluator.evaluate(KERNELS / "linear_bias_relu_modelnew_torch.py", task)
    assert torch_only.failure_class is FailureClass.REWARD_HACK_REFERENCE_CALL, torch_only.message


@pytest.mark.parametrize("n", [64, 165, 1000, 65536])
def test_a_sample_tells_normal_from_uniform_values(n):
    from ksearch.task.importers.common import infer_generator

    for seed in range(5):
        torch.manual_seed(seed)
        assert infer_generator(torch.randn(n))["kind"] == "normal"
        u = infer_generator(torch.rand(n) * 4 - 1)
        assert u["kind"] == "uniform" and -1.3 < u["low"] < -0.8 and 2.8 < u["high"] < 3.3
    assert infer_generator(torch.randint(0, 7, (n,)))["kind"] == "randint"
    assert infer_generator(torch.full((n,), 2.5)) == {"kind": "constant", "value": 2.5}


def test_a_problem_file_that_fails_to_run_is_named_in_one_line(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text((FIXTURES / "softmax_rows.py").read_text() + "\nSCALE = 1 / 0\n")
    with pytest.raises(
        TaskError, match=r"running .*broken\.py failed with ZeroDivisionError: division by zero$"
    ):
        import_task(broken, fmt="kernelbench", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
