"""The harness end to end on CPU (Triton interpreter): honest kernels pass, every cheat is rejected
with its named class, and the sandbox survives crashes, hangs and memory blow-ups."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ksearch.evidence import FailureClass, Status
from ksearch.harness.evaluate import Evaluator
from ksearch.harness.sandbox import Worker
from ksearch.harness.verify import Comparison, compare_many
from ksearch.selfbench.harness_bench import expected_verdict, header
from ksearch.task import load_task
from ksearch.task.spec import ToleranceSpec

TESTS = Path(__file__).parent
HONEST = sorted((TESTS / "honest").glob("*.py"))
CHEATS = sorted((TESTS / "cheats").glob("*.py"))
CPU_CHEATS = [p for p in CHEATS if header(p, "device") != "cuda"]
# Cheats the static layer stops first (their own layer, or the allowlist ahead of the dynamic layer):
# the replay alone must reject them too.
# (`replay: racy`: where a thread's launch is recorded depends on timing; either verdict is sound.)
STATICALLY_STOPPED = [
    p
    for p in CPU_CHEATS
    if (header(p, "layer") == "static" or header(p, "allowlist")) and header(p, "replay") != "racy"
]


@pytest.fixture(scope="module")
def replay_only():
    with Evaluator("cpu", timeout_s=300, static=False) as ev:
        yield ev


@pytest.mark.parametrize("path", HONEST, ids=lambda p: p.stem)
def test_honest_candidates_pass(evaluator, path):
    packet = evaluator.evaluate(path, load_task(header(path, "task")))
    assert packet.status is Status.PASS, (packet.failure_class, packet.message)
    v = packet.validation
    task = load_task(header(path, "task"))
    assert set(v.workloads_checked) == {w.name for w in task.workloads(cpu_only=True)}
    assert set(v.distributions) == set(task.distributions)
    assert len(v.outputs) == len(v.workloads_checked) * len(v.distributions) * len(v.seeds) * len(
        task.output_names
    )
    assert v.backend == "triton-interpreter"
    assert packet.performance is None and packet.unmeasured.reason is FailureClass.UNMEASURED_NO_DEVICE


@pytest.mark.parametrize("path", CPU_CHEATS, ids=lambda p: p.stem)
def test_cheats_are_rejected_with_their_class(evaluator, path):
    expected = FailureClass(expected_verdict(path))
    packet = evaluator.evaluate(path, load_task(header(path, "task")))
    assert packet.status is not Status.PASS, packet.message
    assert packet.failure_class is expected, (packet.failure_class, packet.message)


@pytest.mark.parametrize("path", STATICALLY_STOPPED, ids=lambda p: p.stem)
def test_the_replay_alone_rejects_what_the_static_checks_stop(replay_only, path):
    """With no static checks at all, what the trusted replay sees still fails: a dynamic cheat with
    its own class, a static one with whatever its outputs show. A few static cheats only ever cheated where the replay never
    goes (repeated calls on the same buffers); their `replay: pass` line says why, and there the
    replayed kernels really compute the outputs."""
    task = load_task(header(path, "task"))
    # one CPU workload and one seed unless the cheat's trick needs more (`replay-suite: full`): some
    # of these compute element by element on the host, a minute each over the whole suite
    if header(path, "replay-suite") == "full":
        packet = replay_only.evaluate(path, task)
    else:
        packet = replay_only.evaluate(
            path, task, workloads=[task.workloads(cpu_only=True)[0].name], seeds=(0,)
        )
    if header(path, "layer") == "dynamic":
        assert packet.failure_class is FailureClass(header(path, "expect")), (
            packet.failure_class,
            packet.message,
        )
    if header(path, "replay") == "pass":
        assert packet.status is Status.PASS, packet.message
    else:
        assert packet.status is not Status.PASS, packet.message


def test_there_are_enough_cheats_and_honest_kernels():
    assert len(CHEATS) >= 20 and len(HONEST) >= 10


def test_bf16_on_cpu_is_never_a_pass_but_says_what_fp16_showed(evaluator):
    packet = evaluator.evaluate(TESTS / "honest" / "matmul_tiled.py", load_task("matmul"), dtype="bfloat16")
    assert packet.status is not Status.PASS and packet.failure_class is FailureClass.SKIPPED_BF16_INTERPRETER
    assert "float16 variant verified" in packet.message and packet.reward == 0
    assert packet.validation.outputs and all(o.passed for o in packet.validation.outputs)
    assert packet.candidate.dtype == "bfloat16"
    wrong = evaluator.evaluate(
        next(p for p in CHEATS if header(p, "expect") == "constant_output"),
        load_task("rmsnorm"),
        dtype="bfloat16",
    )
    assert wrong.failure_class is FailureClass.CONSTANT_OUTPUT  # the stand-in's failure is reported as such


def test_packet_carries_a_replay_command_that_reproduces_it(evaluator, tmp_path):
    path = TESTS / "honest" / "rmsnorm_row.py"
    packet = evaluator.evaluate(path, load_task("rmsnorm"), seeds=(3,))
    argv = packet.environment.replay_command.split()
    assert argv[:2] == ["ksearch", "eval"]
    proc = subprocess.run(
        [sys.executable, "-m", "ksearch", *argv[1:], "--device", "cpu", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert again["status"] == "pass"
    assert again["candidate"]["source_hash"] == packet.candidate.source_hash
    assert [
        (o["workload"], o["distribution"], o["seed"], o["max_abs_err"])
        for o in again["validation"]["outputs"]
    ] == [(o.workload, o.distribution, o.seed, o.max_abs_err) for o in packet.validation.outputs]


# ---- the sandbox itself, below the static checks: a candidate that got past them still cannot hurt us


def _job(tmp_path, body: str) -> dict:
    cand = tmp_path / "cand.py"
    cand.write_text(body)
    task = load_task("rmsnorm")
    wl = task.workloads(cpu_only=True)[0]
    inputs = list(task.make_inputs(wl, "normal", 0, dtype="float16").values())
    outputs = list(task.allocate_outputs(wl, dtype="float16").values())
    return {
        "candidate": str(cand),
        "entry": "run",
        "dtype": "float16",
        "n_inputs": len(inputs),
        "buffers": {"tensors": inputs + outputs},
        "calls": [{"id": 0, "args": list(range(len(inputs) + len(outputs)))}],
    }


def test_os_exit_is_a_crash_and_the_next_worker_is_healthy(tmp_path):
    crash = Worker(device="cpu").run(_job(tmp_path, "import os\ndef run(x, w, o):\n    os._exit(3)\n"), 60)
    assert crash.kind == "crash" and "exit code 3" in crash.detail
    ok = Worker(device="cpu").run(_job(tmp_path, "def run(x, w, o):\n    o.fill_(1.0)\n"), 60)
    assert ok.kind == "reply" and ok.reply["buffers"][-1].eq(1).all()


def test_a_worker_never_reaped_leaves_no_directory_behind(tmp_path):
    # an Evaluator its caller never closes (a crashed script, a test) must not litter the temp dir
    script = "from ksearch.harness.sandbox import Worker\nw = Worker(device='cpu')\nw.wait_ready()\nprint(w.tmpdir)\n"
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith(str(tmp_path))
    assert not list(tmp_path.glob("ksearch-*"))


def test_hang_is_killed_at_the_timeout(tmp_path):
    out = Worker(device="cpu").run(_job(tmp_path, "def run(x, w, o):\n    while True: pass\n"), 3)
    assert out.kind == "timeout"


def test_memory_blowup_is_killed_at_the_limit(tmp_path):
    body = "def run(x, w, o):\n    hog = []\n    while True: hog.append(bytearray(50_000_000))\n"
    out = Worker(device="cpu").run(_job(tmp_path, body), 120, memory_mb=1500)
    assert out.kind == "out_of_memory", out.detail


def test_guard_blocks_writes_network_and_processes_from_candidate_code(tmp_path):
    body = (
        "import socket, subprocess\n"
        "def run(x, w, o):\n"
        "    for act in (lambda: open('/tmp/ksearch-escape.txt', 'w'),\n"
        "                lambda: socket.create_connection(('127.0.0.1', 9)),\n"
        "                lambda: subprocess.run(['true'])):\n"
        "        try:\n"
        "            act()\n"
        "        except PermissionError:\n"
        "            pass\n"
        "    open('scratch.txt', 'w').write('allowed: the worker directory')\n"
        "    o.fill_(0.0)\n"
    )
    out = Worker(device="cpu").run(_job(tmp_path, body), 60)
    assert out.kind == "reply"
    blocked = " ".join(out.reply["violations"])
    assert (
        "open '/tmp/ksearch-escape.txt'" in blocked and "socket." in blocked and "subprocess.Popen" in blocked
    )
    assert not os.path.exists("/tmp/ksearch-escape.txt")


def test_eval_cli_exits_zero_whatever_the_verdict():
    cheat = next(p for p in CHEATS if header(p, "expect") == "constant_output")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ksearch",
            "eval",
            str(cheat),
            "--task",
            header(cheat, "task"),
            "--device",
            "cpu",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["failure_class"] == "constant_output"


def test_compare_counts_every_element_of_a_large_half_precision_output():
    """One mismatch in 2^24 + 4 fp16 elements: a count rounded to float32 would read all matched."""
    ref = torch.zeros((1 << 24) + 4, dtype=torch.float16)
    out = ref.clone()
    out[7] = 1.0
    tol = ToleranceSpec(atol=1e-3, rtol=1e-3, matched_ratio=1.0, max_error_cap=10.0)
    [check] = compare_many([Comparison(out, ref, tol, "w", "normal", 0, "o")])
    assert (
        check.matched_ratio == (ref.numel() - 1) / ref.numel()
        and not check.checks["tolerance"]
        and not check.passed
    )


def _mixed_comparisons() -> list[Comparison]:
    """Outputs of three dtypes, each written right, partly unwritten, constant, or one element off
    beside a reference inf: every statistic has something to count."""
    from ksearch.harness.poison import poison

    gen = torch.Generator().manual_seed(3)
    tol = ToleranceSpec(atol=1e-2, rtol=1e-2, matched_ratio=0.99, max_error_cap=1.0)
    items = []
    for shape, dtype in [((4, 33), torch.float16), ((7,), torch.float32), ((3, 5), torch.int32)]:
        for k in range(4):
            ref = (torch.randn(shape, generator=gen) * 4).to(dtype)
            out = ref.clone()
            if k == 1:
                poison(out)
                out.view(-1)[:-2] = ref.view(-1)[:-2]
            elif k == 2:
                out = torch.full_like(ref, 3)
            elif k == 3 and dtype.is_floating_point:
                out.view(-1)[0] += 0.5
                ref.view(-1)[1] = float("inf")
            items.append(Comparison(out, ref, tol, f"w{k}", "normal", k, str(dtype)))
    return items


def test_outputs_judged_together_get_the_verdicts_they_get_alone(monkeypatch):
    """compare_many stacks outputs of one shape: each row's verdict and figures must be its own."""
    from ksearch.harness import verify

    items = _mixed_comparisons()
    monkeypatch.setattr(verify, "STACK_BYTES", {"cpu": 64 << 20})  # stacked, as on a GPU
    together = compare_many(items)
    monkeypatch.setattr(verify, "STACK_BYTES", {})  # every output alone, as on the CPU
    alone = compare_many(items)
    assert [c.model_dump() for c in together] == [c.model_dump() for c in alone]
    assert {c.passed for c in together} == {True, False}
    assert not together[1].checks["written"] and not together[2].checks["not_constant"]


def test_compiled_comparison_gives_the_eager_verdicts_and_figures(monkeypatch):
    """On a GPU the statistics are torch.compile'd; compiled here on the CPU (same graph, Inductor's
    C++ backend), every verdict and figure must be the eager one's."""
    from ksearch.harness import verify

    items = _mixed_comparisons()
    eager = compare_many(items)
    monkeypatch.setattr(verify, "COMPILED_ON", frozenset({"cpu"}))
    monkeypatch.setattr(verify, "_compiled", {})
    compiled = compare_many(items)
    assert not verify._compiled.get("failed"), "the comparison did not compile"
    assert "fn" in verify._compiled
    assert [c.model_dump() for c in compiled] == [c.model_dump() for c in eager]
    assert {c.passed for c in compiled} == {True, False}
    # one graph, no break: on a GPU every statistic fuses into the same few kernels
    out = items[0].out.reshape(1, -1)
    bound = torch.tensor(1e-2, dtype=torch.float64)
    explained = torch._dynamo.explain(verify._statistics)(out, out.clone(), bound, bound)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)


def test_a_failed_compile_falls_back_to_eager_comparison(monkeypatch, caplog):
    from ksearch.harness import verify

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    items = _mixed_comparisons()
    eager = compare_many(items)
    monkeypatch.setattr(verify, "COMPILED_ON", frozenset({"cpu"}))
    monkeypatch.setattr(verify, "_compiled", {"fn": broken})
    with caplog.at_level("WARNING", logger="ksearch.harness.verify"):
        judged = compare_many(items)
    assert [c.model_dump() for c in judged] == [c.model_dump() for c in eager]
    assert verify._compiled["failed"] and "no compiler here" in caplog.text


def test_a_target_only_task_is_statically_checked_and_left_unmeasured_elsewhere(evaluator, tmp_path):
    import shutil

    task_dir = tmp_path / "rmsnorm_b200_only"
    shutil.copytree(Path(load_task("rmsnorm").root), task_dir)
    spec = (task_dir / "task.yaml").read_text().replace("name: rmsnorm", "name: rmsnorm_b200_only", 1)
    (task_dir / "task.yaml").write_text(
        spec + "target_only: {reason: 'the reference calls aiter', targets: [b200]}\n"
    )
    task = load_task(task_dir)
    packet = evaluator.evaluate(TESTS / "honest" / "rmsnorm_row.py", task)
    assert packet.failure_class is FailureClass.SKIPPED_NEEDS_TARGET and packet.reward == 0
    assert "b200 only (the reference calls aiter)" in packet.message
    cheat = evaluator.evaluate(TESTS / "cheats" / "exec_string.py", task)  # the static checks still run first
    assert cheat.failure_class is FailureClass(expected_verdict(TESTS / "cheats" / "exec_string.py"))


def test_inputs_untouched_are_judged_per_call_and_bit_for_bit():
    from ksearch.harness.verify import bitwise_unchanged

    x = torch.randn(4, 8)
    nan = torch.full((3,), float("nan"))
    other_nan = nan.clone()
    other_nan.view(torch.int32)[1] ^= 1  # still NaN, another payload: written
    calls = [[(x.clone(), x), (nan.clone(), nan)], [(x.clone(), x), (other_nan, nan)], [(x[:2], x)], []]
    assert bitwise_unchanged(calls) == [[True, True], [True, False], [False], []]
