"""Task contracts: loading, inputs, references, roofline formulas and error messages (CPU only)."""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import yaml
from rich.console import Console

from ksearch.errors import KsearchError, TaskError
from ksearch.paths import configs_dir
from ksearch.task import (
    Task,
    WorkloadSpec,
    describe_task,
    evaluate_formula,
    list_task_summaries,
    list_tasks,
    load_task,
    parse_formula,
    render_task,
    render_task_list,
)
from ksearch.task.inputs import make_distinct_last_dim, sample
from ksearch.task.spec import (
    HEAVY_TAILED_KINDS,
    ChannelOutliersGen,
    NormalGen,
    ToleranceSpec,
    generator_summary,
)

BUILTINS = [
    "fused_add_rmsnorm",
    "gqa_decode_attention",
    "matmul",
    "moe_topk_routing",
    "rmsnorm",
    "silu_and_mul",
    "softmax",
]


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return {name: load_task(name) for name in BUILTINS}


def _is_pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def _ulp(x: float, dtype: torch.dtype) -> float:
    t = torch.tensor(x, dtype=dtype)
    return (torch.nextafter(t, torch.tensor(math.inf, dtype=dtype)) - t).item()


def _kurtosis(x: torch.Tensor) -> float:
    xf = x.double().flatten()
    centered = xf - xf.mean()
    return (centered.pow(4).mean() / centered.pow(2).mean().square()).item()


def _without_offsets(x: torch.Tensor, gen: Any) -> torch.Tensor:
    """x less the row and column offsets of its generator (medians are robust to the tail)."""
    x2 = x.float().reshape(-1, x.shape[-1])
    if getattr(gen, "column_offset", 0):
        x2 = x2 - x2.median(dim=0).values
    if getattr(gen, "row_offset", 0):
        x2 = x2 - x2.median(dim=1, keepdim=True).values
    return x2


def _max_abs_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return (out.double() - ref.double()).abs().max().item()


# ---------------------------------------------------------------------------------------------
# Loading and the contract


def test_builtin_tasks_are_listed() -> None:
    assert set(BUILTINS) <= set(list_tasks())


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_task_contract(tasks: dict[str, Task], name: str) -> None:
    task = tasks[name]
    assert task.name == name
    assert task.entry_args == [*task.input_names, *task.output_names]
    workloads = task.workloads()
    assert len(workloads) >= 4
    cpu = task.workloads(cpu_only=True)
    assert cpu and all(wl.cpu for wl in cpu) and len(cpu) < len(workloads)

    def dims(wl: WorkloadSpec) -> list[int]:
        return [d for info in [*task.input_specs(wl), *task.output_specs(wl)] for d in info.shape]

    assert any(not _is_pow2(d) for wl in cpu for d in dims(wl)), "cpu subset needs a non-power-of-two dim"
    assert any(not _is_pow2(d) for wl in workloads if not wl.cpu for d in dims(wl)), (
        "GPU suite needs a non-power-of-two"
    )

    def numel(wl: WorkloadSpec) -> int:
        return sum(i.numel for i in [*task.input_specs(wl), *task.output_specs(wl)])

    assert min(workloads, key=numel).cpu, (
        "the smallest (edge-case) workload should run on the CPU interpreter"
    )
    assert "normal" in task.distributions
    assert any(
        gen.kind in HEAVY_TAILED_KINDS
        for overrides in task.spec.distributions.values()
        for gen in overrides.values()
    )
    for info in task.output_specs(workloads[0]):
        tol = task.tolerance(info.dtype)
        assert tol.max_error_cap >= tol.atol
    # describe/render: what `ksearch tasks show` prints
    info = describe_task(task)
    assert info["entry"] == task.spec.entry
    assert [w["name"] for w in info["workloads"]] == [wl.name for wl in workloads]
    for row in info["workloads"]:
        assert row["flops"] > 0 and row["bytes"] > 0
        assert row["arithmetic_intensity"] == pytest.approx(row["flops"] / row["bytes"])
    text = io.StringIO()
    Console(file=text, width=200).print(render_task(task))
    assert workloads[-1].name in text.getvalue() and task.spec.entry in text.getvalue()


def test_task_list_rendering() -> None:
    rows = list_task_summaries()
    assert {r["name"] for r in rows} >= set(BUILTINS)
    assert all("error" not in r for r in rows if r["name"] in BUILTINS)
    text = io.StringIO()
    Console(file=text, width=250).print(render_task_list(rows))
    assert "moe_topk_routing" in text.getvalue()


# ---------------------------------------------------------------------------------------------
# References over the whole suite


# matmul's whole suite is half a minute of CPU GEMMs: the slow tier (the fast one runs the rest)
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "matmul" else n for n in BUILTINS]
)
def test_reference_runs_every_workload_and_distribution(tasks: dict[str, Task], name: str) -> None:
    task = tasks[name]
    largest: dict[str, float] = {}
    for wl in task.workloads():
        for dist in task.distributions:
            inputs = task.make_inputs(wl, dist, seed=0)
            for info in task.input_specs(wl):
                assert tuple(inputs[info.name].shape) == info.shape
                assert str(inputs[info.name].dtype) == f"torch.{info.dtype}"
                if inputs[info.name].is_floating_point():
                    assert torch.isfinite(inputs[info.name].float()).all()  # float32 checks are faster on CPU
            outputs = task.run_reference(inputs, wl)
            assert list(outputs) == task.output_names
            for info in task.output_specs(wl):
                out = outputs[info.name]
                assert tuple(out.shape) == info.shape, (wl.name, dist, info.name)
                assert str(out.dtype) == f"torch.{info.dtype}", (wl.name, dist, info.name)
                if out.is_floating_point():
                    magnitude = out.float().abs()
                    assert torch.isfinite(magnitude).all(), (wl.name, dist, info.name)
                    largest[info.name] = max(largest.get(info.name, 0.0), magnitude.max().item())
    # The caps must not reject a correct kernel: at the largest reference magnitude of the suite,
    # two ulps of every float variant stay within the cap, and rtol covers a rounding step.
    for variant in task.dtypes:
        out_dtypes = {
            info.name: getattr(torch, info.dtype) for info in task.output_specs(task.workloads()[0], variant)
        }
        for out_name, tol in task.output_tolerances(variant).items():
            dtype = out_dtypes[out_name]
            if not dtype.is_floating_point:
                assert tol.atol == 0 and tol.rtol == 0 and tol.max_error_cap == 0
                continue
            assert tol.max_error_cap >= 2 * _ulp(largest[out_name], dtype), (
                variant,
                out_name,
                largest[out_name],
            )
            assert tol.rtol >= 2 * torch.finfo(dtype).eps, (variant, out_name)


@pytest.mark.parametrize("name", BUILTINS)
def test_reference_every_dtype_variant(tasks: dict[str, Task], name: str) -> None:
    task = tasks[name]
    wl = task.workloads(cpu_only=True)[0]
    for variant in task.dtypes:
        inputs = task.make_inputs(wl, "normal", seed=3, dtype=variant)
        outputs = task.run_reference(inputs, wl, dtype=variant)
        allocated = task.allocate_outputs(wl, dtype=variant)
        for info in task.output_specs(wl, variant):
            assert outputs[info.name].dtype == allocated[info.name].dtype == getattr(torch, info.dtype)
            assert tuple(allocated[info.name].shape) == tuple(outputs[info.name].shape) == info.shape


# ---------------------------------------------------------------------------------------------
# Inputs


@pytest.mark.parametrize("name", BUILTINS)
def test_inputs_deterministic_per_seed_and_differ_across_seeds(tasks: dict[str, Task], name: str) -> None:
    task = tasks[name]
    wl = max(task.workloads(cpu_only=True), key=lambda w: sum(i.numel for i in task.input_specs(w)))
    for dist in task.distributions:
        first = task.make_inputs(wl, dist, seed=7)
        again = task.make_inputs(wl, dist, seed=7)
        other = task.make_inputs(wl, dist, seed=8)
        for key in first:
            assert torch.equal(first[key], again[key]), (dist, key)
            if first[key].numel() > 1:
                assert not torch.equal(first[key], other[key]), (dist, key)


@pytest.mark.parametrize("name", BUILTINS)
def test_distributions_differ(tasks: dict[str, Task], name: str) -> None:
    task = tasks[name]
    for dist, overrides in task.spec.distributions.items():
        for input_name, gen in overrides.items():
            # a mid-size workload: enough samples for stable moments, fast to draw
            wl = max(
                (
                    w
                    for w in task.workloads()
                    if task.input_specs(w)[task.input_names.index(input_name)].numel <= 4_000_000
                ),
                key=lambda w: task.input_specs(w)[task.input_names.index(input_name)].numel,
            )
            base = task.make_inputs(wl, "normal", seed=0)[input_name]
            drawn = task.make_inputs(wl, dist, seed=0)[input_name]
            assert not torch.equal(base, drawn), (dist, input_name)
            if gen.kind in HEAVY_TAILED_KINDS:
                # the tail is the kind's own; offsets either generator adds are taken back out
                base = _without_offsets(base, task.spec.inputs[input_name].distribution)
                tail = _without_offsets(drawn, gen)
                assert _kurtosis(tail) > 2 * _kurtosis(base), (dist, input_name)
                assert tail.abs().max() > 2 * base.abs().max(), (dist, input_name)
        # inputs a distribution does not override are unchanged
        wl = task.workloads(cpu_only=True)[0]
        base_inputs = task.make_inputs(wl, "normal", seed=0)
        dist_inputs = task.make_inputs(wl, dist, seed=0)
        for input_name in task.input_names:
            if input_name not in overrides:
                assert torch.equal(base_inputs[input_name], dist_inputs[input_name])


def test_hot_experts_skew_expert_popularity(tasks: dict[str, Task]) -> None:
    task = tasks["moe_topk_routing"]
    wl = task.workload("gpt_oss_20b_t4096_e32_k4")
    share = {}
    for dist in ("normal", "hot_experts"):
        ids = task.run_reference(task.make_inputs(wl, dist, seed=0), wl)["topk_ids"]
        counts = torch.bincount(ids[:, 0].long(), minlength=32).double()
        share[dist] = (counts.max() / counts.sum()).item()
    assert share["normal"] < 3 / 32
    assert share["hot_experts"] > 10 / 32


def test_router_logits_have_no_ties(tasks: dict[str, Task]) -> None:
    task = tasks["moe_topk_routing"]
    for dist in task.distributions:
        logits = task.make_inputs("gpt_oss_120b_t8192_e128_k4", dist, seed=1)["logits"]
        ordered = logits.sort(dim=-1).values
        assert (ordered[:, 1:] > ordered[:, :-1]).all(), dist


# ---------------------------------------------------------------------------------------------
# Row features: offsets, massive activations, zero and constant rows


def _draw(gen: Any, shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float16) -> torch.Tensor:
    return sample(gen, shape, dtype, torch.Generator().manual_seed(seed), {})


def test_row_features_place_offsets_massive_zero_and_constant_rows() -> None:
    gen = NormalGen(
        kind="normal",
        row_offset=200.0,
        massive=(1e3, 3e4),
        massive_rows=2,
        massive_channels=3,
        zero_rows=1,
        constant_rows=1,
    )
    x = _draw(gen, (9, 64), seed=0).float()
    assert torch.isfinite(x).all()
    zero = [i for i in range(9) if (x[i] == 0).all()]
    const = [i for i in range(9) if i not in zero and (x[i] == x[i, 0]).all()]
    massive = [i for i in range(9) if (x[i].abs() >= 1e3).any()]
    assert len(zero) == 1 and len(const) == 1 and len(massive) == 2
    assert not set(zero) & set(massive) and not set(const) & set(massive)
    # the same channels in every massive row, magnitudes in range, the rest of the row untouched
    chans = [set((x[i].abs() >= 1e3).nonzero().flatten().tolist()) for i in massive]
    assert chans[0] == chans[1] and len(chans[0]) == 3
    big = x[massive][:, sorted(chans[0])].abs()
    assert (big >= 1e3 * (1 - 2**-10)).all() and (big <= 3e4 * (1 + 2**-10)).all()
    # every other row sits 100..200 from 0 (its own offset, either sign)
    for i in set(range(9)) - set(zero) - set(massive):
        assert 95 < x[i].mean().abs() < 205, i
    # which rows are special depends on the shape only: another seed puts them at the same rows
    y = _draw(gen, (9, 64), seed=1).float()
    assert [i for i in range(9) if (y[i] == 0).all()] == zero and not torch.equal(x, y)
    # deterministic per seed
    assert torch.equal(_draw(gen, (9, 64), seed=0).float(), x)


def test_row_features_leave_an_ordinary_row_and_keep_massive_on_one_row() -> None:
    gen = NormalGen(
        kind="normal",
        massive=(500.0, 500.0),
        massive_rows=2,
        massive_channels=1,
        zero_rows=3,
        constant_rows=3,
    )
    one = _draw(gen, (1, 32), seed=0).float()  # a single row: never zeroed or made constant, but massive
    assert (one != 0).all() and (one.abs() == 500).sum() == 1
    two = _draw(gen, (2, 32), seed=0).float()  # one zero row, the other massive
    assert sorted(int((r == 0).all()) for r in two) == [0, 1] and (two.abs() == 500).sum() == 1
    # inputs of one shape agree on their special rows (a zero row of x + residual is zero)
    other = NormalGen(kind="normal", std=2.0, zero_rows=3, constant_rows=3)
    a, b = _draw(gen, (16, 32), seed=3).float(), _draw(other, (16, 32), seed=4).float()
    assert [i for i in range(16) if (a[i] == 0).all()] == [i for i in range(16) if (b[i] == 0).all()]
    summed = a + b
    assert sum(bool((r == r[0]).all()) for r in summed) == 6  # 3 zero + 3 constant rows


def test_row_features_off_change_nothing() -> None:
    plain = _draw(ChannelOutliersGen(kind="channel_outliers"), (8, 128), seed=5)
    assert torch.equal(
        plain, _draw(ChannelOutliersGen(kind="channel_outliers", zero_rows=0), (8, 128), seed=5)
    )
    assert (
        generator_summary(ChannelOutliersGen(kind="channel_outliers"))
        == "channel_outliers(std=1.0, channels=4, magnitude=16.0)"
    )
    assert (
        generator_summary(NormalGen(kind="normal", column_offset=10.0, massive=(1.0, 2.0)))
        == "normal(mean=0.0, std=1.0, column_offset=10.0, massive=[1.0, 2.0], massive_rows=1, massive_channels=1)"
    )
    # a column offset moves each channel by the same amount in every row
    shifted = _draw(NormalGen(kind="normal", column_offset=10.0), (64, 16), seed=5, dtype=torch.float32)
    means = shifted.mean(0).abs()
    assert (means > 4).all() and (means < 11).all() and shifted.std(0).max() < 2


@pytest.mark.parametrize(
    ("gen", "expected"),
    [
        ({"kind": "normal", "massive_rows": 2}, "massive_rows is set but massive is not"),
        ({"kind": "normal", "massive": [5.0, 1.0]}, "massive needs 0 < low <= high"),
        ({"kind": "normal", "massive": [1.0e3, 1.0e5]}, "past float16's largest finite value 65504"),
        ({"kind": "normal", "row_offset": -1.0}, "row_offset"),
        ({"kind": "student_t", "zero_rows": -1}, "zero_rows"),
    ],
)
def test_row_feature_errors(tmp_path: Path, gen: dict[str, Any], expected: str) -> None:
    data, dest = _good_task(tmp_path)
    data["distributions"]["outliers"]["x"] = gen
    with pytest.raises(TaskError) as exc:
        load_task(_write(dest, data))
    assert expected in _single_line(exc)


# ---------------------------------------------------------------------------------------------
# The suite catches careless numerics that inputs clipped at |x| <= 100 let through


def _accepted(out: torch.Tensor, ref: torch.Tensor, tol: ToleranceSpec) -> bool:
    """The harness's verdict on one output: finite where the reference is, matched ratio and cap."""
    out, ref = out.double(), ref.double()
    finite = torch.isfinite(ref)
    if not torch.isfinite(out[finite]).all():
        return False
    diff = (out - ref).abs()[finite]
    matched = (diff <= tol.atol + tol.rtol * ref.abs()[finite]).double().mean().item()
    return matched >= tol.matched_ratio and diff.max().item() <= tol.max_error_cap


def _cpu_cases(
    task: Task, dist: str
) -> list[tuple[WorkloadSpec, dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    cases = []
    for wl in task.workloads(cpu_only=True):
        for seed in (0, 1):
            inputs = task.make_inputs(wl, dist, seed)
            cases.append((wl, inputs, task.run_reference(inputs, wl)))
    return cases


def test_softmax_fixed_shift_overflows_on_shifted_rows(tasks: dict[str, Task]) -> None:
    task = tasks["softmax"]
    tol = task.tolerance("float16")
    for wl, inputs, ref in _cpu_cases(task, "shifted_rows"):
        x = inputs["x"].float()
        e = torch.exp(x - 20.0)  # a fixed shift instead of the row max
        assert not _accepted((e / e.sum(-1, keepdim=True)).half(), ref["out"], tol), wl.name
        # zero and constant rows are uniform
        flat = [i for i in range(x.shape[0]) if (x[i] == x[i, 0]).all()]
        assert len(flat) == min(2, x.shape[0] - 1)
        for i in flat:
            assert torch.equal(ref["out"][i], torch.full_like(ref["out"][i], 1 / x.shape[1]))


def _rmsnorm_fp16_squares(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    ss = h.half().square().sum(-1, keepdim=True, dtype=torch.float16)  # squares and sum in float16
    return (h.float() * torch.rsqrt(ss.float() / h.shape[-1] + 1e-6) * weight.float()).half()


def test_rmsnorm_fp16_squares_fail_on_massive_activations(tasks: dict[str, Task]) -> None:
    task = tasks["rmsnorm"]
    tol = task.tolerance("float16")
    for wl, inputs, ref in _cpu_cases(task, "massive"):
        assert not _accepted(_rmsnorm_fp16_squares(inputs["x"], inputs["weight"]), ref["out"], tol), wl.name
        # a zero row normalizes to zero (eps keeps it finite)
        zero = (inputs["x"] == 0).all(-1)
        assert int(zero.sum()) == (1 if wl.axes["M"] > 1 else 0)
        assert (ref["out"][zero] == 0).all() and torch.isfinite(ref["out"]).all()
    # the other distributions stay below float16 overflow: the trap is the massive one's
    for dist in ("normal", "heavy_tailed", "outliers"):
        for wl, inputs, ref in _cpu_cases(task, dist):
            assert _accepted(_rmsnorm_fp16_squares(inputs["x"], inputs["weight"]), ref["out"], tol), (
                wl.name,
                dist,
            )


def test_fused_add_rmsnorm_massive_rows_line_up(tasks: dict[str, Task]) -> None:
    task = tasks["fused_add_rmsnorm"]
    tol = task.tolerance("float16")
    for wl, inputs, ref in _cpu_cases(task, "massive"):
        h = ref["residual_out"]
        assert h.abs().max() >= 300
        assert not _accepted(_rmsnorm_fp16_squares(h, inputs["weight"]), ref["out"], tol), wl.name
        if wl.axes["M"] > 1:  # the zero and constant rows of x and residual are the same rows
            rows = [bool((r == r[0]).all()) for r in h]
            zero = [bool((r == 0).all()) for r in h]
            assert sum(rows) == 2 and sum(zero) == 1
            assert (ref["out"][torch.tensor(zero)] == 0).all()


def test_matmul_fp16_accumulation_fails_the_deep_k_workload(tasks: dict[str, Task]) -> None:
    task = tasks["matmul"]
    tol = task.tolerance("float16")
    wl = task.workload("deep_k_m16_n32_k8192")
    assert wl.cpu
    for dist in task.distributions:
        for seed in (0, 1):
            inputs = task.make_inputs(wl, dist, seed)
            a, b = inputs["a"].float(), inputs["b"].float()
            c = task.run_reference(inputs, wl)["c"]
            fp32 = sum(a[:, k : k + 32] @ b[k : k + 32] for k in range(0, a.shape[1], 32))
            assert _accepted(fp32.half(), c, tol), (dist, seed)
            if dist != "normal":
                continue
            # a float16 accumulator rounded once per K step, at every step an MMA or a tile loop uses
            for step in (16, 32, 64, 128):
                acc = torch.zeros_like(c)
                for k in range(0, a.shape[1], step):
                    acc = acc + (a[:, k : k + step] @ b[k : k + step]).half()
                assert not _accepted(acc, c, tol), (seed, step)


def test_attention_and_routing_scores_far_from_zero(tasks: dict[str, Task]) -> None:
    attn = tasks["gqa_decode_attention"]
    overflowed = 0
    for _wl, inputs, ref in _cpu_cases(attn, "key_channel_outliers"):
        q, k = inputs["q"].float(), inputs["k_cache"].float()
        group = q.shape[1] // k.shape[1]
        scores = torch.einsum("bhd,bhld->bhl", q, k.repeat_interleave(group, dim=1)) / math.sqrt(128)
        overflowed += int((scores.amax(-1) > 88).sum())  # exp(score) without the running max is inf
        assert torch.isfinite(ref["o"]).all()
    assert overflowed > 0
    moe = tasks["moe_topk_routing"]
    for wl, inputs, ref in _cpu_cases(moe, "hot_experts"):
        chosen = inputs["logits"].gather(-1, ref["topk_ids"].long())
        e = torch.exp(chosen)  # the top-k softmax without subtracting the top logit
        assert not _accepted(e / e.sum(-1, keepdim=True), ref["topk_weights"], moe.tolerance("float32")), (
            wl.name
        )


def test_silu_massive_gate_overflows_a_naive_sigmoid(tasks: dict[str, Task]) -> None:
    task = tasks["silu_and_mul"]
    caught = 0
    for _wl, inputs, ref in _cpu_cases(task, "outliers"):
        gate, up = inputs["x"].float().chunk(2, dim=-1)
        naive = (gate * torch.exp(gate) / (1 + torch.exp(gate)) * up).half()  # inf / inf past 88
        caught += not _accepted(naive, ref["out"], task.tolerance("float16"))
        assert torch.isfinite(ref["out"]).all() and ref["out"].abs().max() < 2048
    assert caught > 0


def test_make_distinct_last_dim_breaks_ties_and_keeps_order() -> None:
    x = torch.tensor([[1.0, 1.0, 1.0, 0.0], [2.0, -1.0, 2.0, 3.0]])
    y = make_distinct_last_dim(x.clone())
    for row in y:
        assert len(set(row.tolist())) == row.numel()
    assert torch.equal(y.argmax(dim=-1), torch.tensor([2, 3]))
    assert (y - x).abs().max() < 1e-6
    assert torch.equal(y[:, 3], x[:, 3]) and y[1, 1] == -1.0


def test_large_draws_are_chunked_the_same_on_any_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above two chunks a normal draw is filled on several threads; the values depend on the seed
    alone (not on the thread count), chunks are not copies of each other, and it is a normal."""
    from ksearch.task import inputs

    monkeypatch.setattr(inputs, "CHUNK", 1 << 12)
    shape = (5, 3000)  # 15000 elements: three full chunks and a partial one
    draws = []
    for threads in (1, 3):
        monkeypatch.setattr(inputs, "THREADS", threads)
        draws.append(inputs._normal(shape, torch.Generator().manual_seed(11)))
    assert torch.equal(draws[0], draws[1]) and draws[0].shape == shape
    flat = draws[0].view(-1)
    assert not torch.equal(flat[: 1 << 12], flat[1 << 12 : 2 << 12])
    assert abs(flat.mean().item()) < 0.05 and abs(flat.std().item() - 1) < 0.05
    other = inputs._normal(shape, torch.Generator().manual_seed(12))
    assert not torch.equal(draws[0], other)
    # a small draw is one randn on the caller's generator, as before
    small = inputs._normal((7, 9), torch.Generator().manual_seed(11))
    assert torch.equal(small, torch.randn((7, 9), generator=torch.Generator().manual_seed(11)))


def test_make_inputs_rejects_unknown_distribution_and_workload(tasks: dict[str, Task]) -> None:
    task = tasks["rmsnorm"]
    with pytest.raises(TaskError, match="no distribution 'cauchy'.*normal, heavy_tailed, outliers"):
        task.make_inputs("gpt_oss_m7_n2880", "cauchy", seed=0)
    with pytest.raises(TaskError, match="no workload 'nope'"):
        task.make_inputs("nope", "normal", seed=0)
    with pytest.raises(TaskError, match="dtype 'int8' is not one of its variants"):
        task.make_inputs("gpt_oss_m7_n2880", "normal", seed=0, dtype="int8")


# ---------------------------------------------------------------------------------------------
# FLOP and byte formulas against hand counts


HAND_COUNTS = [
    # (task, axes, dtype, flops, bytes)
    ("matmul", {"M": 64, "N": 32, "K": 16}, "float16", 2 * 64 * 32 * 16, (64 * 16 + 16 * 32 + 64 * 32) * 2),
    (
        "matmul",
        {"M": 16, "N": 6144, "K": 4096},
        "bfloat16",
        2 * 16 * 6144 * 4096,
        (16 * 4096 + 4096 * 6144 + 16 * 6144) * 2,
    ),
    # rmsnorm: x and out are M*N, weight is N
    ("rmsnorm", {"M": 7, "N": 2880}, "float32", 4 * 7 * 2880, (7 * 2880 + 2880 + 7 * 2880) * 4),
    ("rmsnorm", {"M": 1, "N": 4096}, "float16", 4 * 1 * 4096, (4096 + 4096 + 4096) * 2),
    ("softmax", {"M": 17, "N": 1000}, "float32", 5 * 17 * 1000, (17 * 1000 + 17 * 1000) * 4),
    ("softmax", {"M": 5, "N": 8}, "bfloat16", 5 * 5 * 8, (5 * 8 + 5 * 8) * 2),
    # x, residual, out, residual_out are M*N; weight is N
    ("fused_add_rmsnorm", {"M": 1, "N": 4096}, "bfloat16", 5 * 4096, (4 * 4096 + 4096) * 2),
    ("fused_add_rmsnorm", {"M": 3, "N": 10}, "float32", 5 * 3 * 10, (4 * 3 * 10 + 10) * 4),
    # x is [M, 2I], out is [M, I]
    ("silu_and_mul", {"M": 7, "I": 1408}, "float16", 5 * 7 * 1408, (7 * 2 * 1408 + 7 * 1408) * 2),
    ("silu_and_mul", {"M": 2, "I": 3}, "float32", 5 * 2 * 3, (2 * 6 + 2 * 3) * 4),
    # q and o are B*Hq*D, k and v are B*Hkv*L*D, D = 128
    (
        "gqa_decode_attention",
        {"B": 2, "Hq": 32, "Hkv": 8, "L": 100},
        "float16",
        4 * 2 * 32 * 100 * 128,
        (2 * 32 * 128 + 2 * (2 * 8 * 100 * 128) + 2 * 32 * 128) * 2,
    ),
    (
        "gqa_decode_attention",
        {"B": 1, "Hq": 8, "Hkv": 1, "L": 1},
        "bfloat16",
        4 * 1 * 8 * 1 * 128,
        (8 * 128 + 2 * (1 * 1 * 1 * 128) + 8 * 128) * 2,
    ),
    # logits T*E float32; weights T*K float32; ids T*K int32
    (
        "moe_topk_routing",
        {"T": 33, "E": 60, "K": 4},
        "float32",
        33 * 60 + 4 * 33 * 4,
        33 * 60 * 4 + 33 * 4 * 4 + 33 * 4 * 4,
    ),
    ("moe_topk_routing", {"T": 1, "E": 8, "K": 2}, "float32", 8 + 4 * 2, 8 * 4 + 2 * 4 + 2 * 4),
]


@pytest.mark.parametrize(("name", "axes", "dtype", "flops", "nbytes"), HAND_COUNTS)
def test_flop_and_byte_formulas_match_hand_counts(
    tasks: dict[str, Task], name: str, axes: dict[str, int], dtype: str, flops: int, nbytes: int
) -> None:
    task = tasks[name]
    wl = WorkloadSpec(name="hand_count", axes=axes)
    assert task.flops(wl, dtype) == flops
    assert task.bytes(wl, dtype) == nbytes
    assert task.arithmetic_intensity(wl, dtype) == pytest.approx(flops / nbytes)
    # and the declared tensor sizes agree with the byte count (compulsory traffic = every tensor once)
    infos = [*task.input_specs(wl, dtype), *task.output_specs(wl, dtype)]
    assert sum(i.nbytes for i in infos) == nbytes


def test_ad_hoc_workload_must_give_the_var_axes(tasks: dict[str, Task]) -> None:
    with pytest.raises(TaskError, match="missing=\\['K'\\]"):
        tasks["matmul"].flops(WorkloadSpec(name="x", axes={"M": 1, "N": 2}))
    with pytest.raises(TaskError, match="unexpected=\\['D'\\]"):
        tasks["gqa_decode_attention"].flops(
            WorkloadSpec(name="x", axes={"B": 1, "Hq": 8, "Hkv": 1, "L": 4, "D": 64})
        )


# ---------------------------------------------------------------------------------------------
# References against independent computations


def test_rmsnorm_matches_torch_rms_norm(tasks: dict[str, Task]) -> None:
    task = tasks["rmsnorm"]
    for wl, dist in (("gpt_oss_m7_n2880", "outliers"), ("deepseek_v3_decode_m64_n7168", "heavy_tailed")):
        inputs = task.make_inputs(wl, dist, seed=2, dtype="float32")
        out = task.run_reference(inputs, wl, dtype="float32")["out"]
        expected = F.rms_norm(
            inputs["x"].double(), (inputs["x"].shape[-1],), inputs["weight"].double(), eps=1e-6
        )
        assert _max_abs_err(out, expected) < 1e-4
    # float16: the reference rounds once, so it is within one ulp of the exact value
    inputs = task.make_inputs("gpt_oss_m7_n2880", "normal", seed=2)
    out = task.run_reference(inputs)["out"]  # axes and dtype read off the inputs
    x = inputs["x"].double()
    exact = x / (x.square().mean(-1, keepdim=True) + 1e-6).sqrt() * inputs["weight"].double()
    assert ((out.double() - exact).abs() <= exact.abs() * 2**-10 + 2**-24).all()


def test_fused_add_rmsnorm_matches_unfused(tasks: dict[str, Task]) -> None:
    task = tasks["fused_add_rmsnorm"]
    for variant in ("float16", "float32"):
        inputs = task.make_inputs("deepseek_v3_decode_m64_n7168", "outliers", seed=4, dtype=variant)
        result = task.run_reference(inputs, "deepseek_v3_decode_m64_n7168", dtype=variant)
        summed = inputs["x"] + inputs["residual"]  # one rounding, as in an unfused model
        assert torch.equal(result["residual_out"], summed)
        h = result["residual_out"].double()
        expected = F.rms_norm(h, (h.shape[-1],), inputs["weight"].double(), eps=1e-6)
        tol = task.tolerance(variant)
        assert ((result["out"].double() - expected).abs() <= tol.atol + tol.rtol * expected.abs()).all()


def test_softmax_rows_sum_to_one_and_match_torch(tasks: dict[str, Task]) -> None:
    task = tasks["softmax"]
    for wl in ("mixtral_router_m5_n8", "scores_m17_n1000", "attn_scores_m3000_n1000"):
        for dist in task.distributions:
            inputs = task.make_inputs(wl, dist, seed=5, dtype="float32")
            out = task.run_reference(inputs, wl, dtype="float32")["out"]
            assert (out >= 0).all()
            assert torch.allclose(
                out.double().sum(-1), torch.ones(out.shape[0], dtype=torch.float64), atol=1e-5
            )
            expected = torch.softmax(inputs["x"].double(), dim=-1)
            assert _max_abs_err(out, expected) < 1e-6


def test_matmul_matches_float64(tasks: dict[str, Task]) -> None:
    task = tasks["matmul"]
    for wl in ("ragged_m96_n80_k72", "llama3_70b_tp8_qkv_m128_n1280_k8192"):
        for variant in task.dtypes:
            inputs = task.make_inputs(wl, "outliers", seed=6, dtype=variant)
            c = task.run_reference(inputs, wl, dtype=variant)["c"]
            exact = inputs["a"].double() @ inputs["b"].double()
            tol = task.tolerance(variant)
            assert ((c.double() - exact).abs() <= tol.atol + tol.rtol * exact.abs()).all()


def test_silu_and_mul_matches_formula(tasks: dict[str, Task]) -> None:
    task = tasks["silu_and_mul"]
    inputs = task.make_inputs("deepseek_v2_lite_expert_m7_i1408", "heavy_tailed", seed=7, dtype="float32")
    out = task.run_reference(inputs)["out"]  # I is solved from x's 2*I columns
    x = inputs["x"].double()
    gate, up = x[:, :1408], x[:, 1408:]
    expected = gate / (1 + torch.exp(-gate)) * up
    assert out.shape == (7, 1408)
    assert ((out.double() - expected).abs() <= 1e-5 + 1e-5 * expected.abs()).all()


def test_gqa_decode_attention_matches_repeated_heads(tasks: dict[str, Task]) -> None:
    task = tasks["gqa_decode_attention"]
    for wl in ("llama3_8b_b2_l100", "llama3_70b_tp8_b1_l64"):
        inputs = task.make_inputs(wl, "key_channel_outliers", seed=8)
        o = task.run_reference(inputs, wl)["o"]
        q, k, v = (inputs[n].double() for n in ("q", "k_cache", "v_cache"))
        group = q.shape[1] // k.shape[1]
        k_rep = k.repeat_interleave(group, dim=1)  # [B, Hq, L, D]
        v_rep = v.repeat_interleave(group, dim=1)
        scores = (q.unsqueeze(2) @ k_rep.transpose(-1, -2)).squeeze(2) / math.sqrt(128)
        expected = (torch.softmax(scores, dim=-1).unsqueeze(2) @ v_rep).squeeze(2)
        tol = task.tolerance("float16")
        assert ((o.double() - expected).abs() <= tol.atol + tol.rtol * expected.abs()).all()
    # one cached token: attention returns that token's value row for every query head of the group
    inputs = task.make_inputs("llama3_70b_tp8_b1_l1", "normal", seed=9)
    o = task.run_reference(inputs, "llama3_70b_tp8_b1_l1")["o"]
    assert torch.equal(o, inputs["v_cache"][:, 0, 0, :].unsqueeze(1).expand_as(o))


def test_moe_routing_matches_torch_topk(tasks: dict[str, Task]) -> None:
    task = tasks["moe_topk_routing"]
    for wl in ("qwen15_moe_t1000_e60_k4", "deepseek_v3_sized_t4096_e256_k8"):
        k = task.axes_for(wl)["K"]
        for dist in task.distributions:
            inputs = task.make_inputs(wl, dist, seed=10)
            result = task.run_reference(inputs, wl)
            logits = inputs["logits"]
            expected_ids = torch.topk(logits, k, dim=-1).indices
            assert torch.equal(result["topk_ids"].long(), expected_ids)
            chosen = logits.gather(-1, result["topk_ids"].long()).double()
            assert (chosen[:, :-1] > chosen[:, 1:]).all()  # descending logit order
            expected_w = torch.exp(chosen - chosen[:, :1]) / torch.exp(chosen - chosen[:, :1]).sum(
                -1, keepdim=True
            )
            assert _max_abs_err(result["topk_weights"], expected_w) < 1e-6
            assert torch.allclose(
                result["topk_weights"].double().sum(-1), torch.ones(len(chosen), dtype=torch.float64)
            )
    tolerances = task.output_tolerances()
    assert tolerances["topk_ids"].atol == 0 and tolerances["topk_ids"].rtol == 0
    # K appears in no input shape, so the axes cannot be guessed without the workload
    with pytest.raises(TaskError, match="axis 'K' cannot be read off the input shapes; pass workload="):
        task.run_reference(task.make_inputs("mixtral_t1_e8_k2", "normal", seed=0))
    partial = task.axes_from_inputs(task.make_inputs("mixtral_t1_e8_k2", "normal", seed=0), partial=True)
    assert "K" not in partial and {a: partial[a] for a in ("T", "E")} == {
        a: task.axes_for("mixtral_t1_e8_k2")[a] for a in ("T", "E")
    }


# ---------------------------------------------------------------------------------------------
# Bad task files


def _good_task(tmp_path: Path, name: str = "rmsnorm") -> tuple[dict[str, Any], Path]:
    src = configs_dir() / "tasks" / name
    data = yaml.safe_load((src / "task.yaml").read_text())
    dest = tmp_path / "mytask"
    dest.mkdir()
    shutil.copy(src / "reference.py", dest / "reference.py")
    return data, dest


def _write(dest: Path, data: dict[str, Any]) -> Path:
    (dest / "task.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def _single_line(exc: pytest.ExceptionInfo[TaskError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    assert isinstance(exc.value, KsearchError)
    return msg


def test_copied_good_task_loads_by_path(tmp_path: Path) -> None:
    data, dest = _good_task(tmp_path)
    _write(dest, data)
    for ref in (dest, dest / "task.yaml", str(dest)):
        task = load_task(ref)
        assert task.name == "rmsnorm" and task.root == dest


def test_missing_field(tmp_path: Path) -> None:
    data, dest = _good_task(tmp_path)
    del data["inputs"]
    with pytest.raises(TaskError) as exc:
        load_task(_write(dest, data))
    msg = _single_line(exc)
    assert (
        "field 'inputs' is missing" in msg and "task.yaml" in msg and "inputs: {name: {dtype, shape}}" in msg
    )


def test_unknown_axis_in_shape(tmp_path: Path) -> None:
    data, dest = _good_task(tmp_path)
    data["inputs"]["x"]["shape"] = ["M", "Q"]
    with pytest.raises(TaskError) as exc:
        load_task(_write(dest, data))
    assert "input 'x' shape uses unknown axis 'Q'" in _single_line(exc)


def test_unknown_distribution_generator(tmp_path: Path) -> None:
    data, dest = _good_task(tmp_path)
    data["distributions"]["heavy_tailed"]["x"] = {"kind": "cauchy"}
    with pytest.raises(TaskError) as exc:
        load_task(_write(dest, data))
    msg = _single_line(exc)
    assert "unknown distribution generator 'cauchy'" in msg and "student_t" in msg


def test_unknown_task_name() -> None:
    with pytest.raises(TaskError) as exc:
        load_task("no_such_task")
    msg = _single_line(exc)
    assert "unknown task 'no_such_task'" in msg and "rmsnorm" in msg


def test_disallowed_formula_in_task(tmp_path: Path) -> None:
    data, dest = _good_task(tmp_path)
    data["flops"] = "__import__('os').system('true')"
    with pytest.raises(TaskError) as exc:
        load_task(_write(dest, data))
    msg = _single_line(exc)
    assert "flops formula" in msg and "not allowed" in msg


@pytest.mark.parametrize(
    "bad",
    [
        "__import__('os')",
        "os.system",
        "M[0]",
        "lambda: 1",
        "'text'",
        "M if N else K",
        "(1).__class__",
        "open('x')",
        "min(M, N, key=abs)",
        "M < N",
    ],
)
def test_disallowed_formulas(bad: str) -> None:
    with pytest.raises(TaskError, match="not allowed|not valid"):
        parse_formula(bad)


def test_formula_evaluation() -> None:
    assert (
        evaluate_formula("ceil(M / 128) * max(N, 2) + 2**3 - 7 // 2 + floor(1.5)", {"M": 129, "N": 5})
        == 2 * 5 + 8 - 3 + 1
    )
    assert evaluate_formula("1/sqrt(D)", {"D": 128}) == pytest.approx(1 / math.sqrt(128))
    with pytest.raises(TaskError, match="unknown name 'Q'"):
        evaluate_formula("M*Q", {"M": 1})
    with pytest.raises(TaskError, match="cannot be evaluated"):
        evaluate_formula("2**1000", {})
    with pytest.raises(TaskError, match="cannot be evaluated"):
        evaluate_formula("M / (N - N)", {"M": 1, "N": 2})


def test_formula_with_unknown_name_in_task(tmp_path: Path) -> None:
    data, dest = _good_task(tmp_path)
    data["bytes"] = "M*N*itemsize_y"
    with pytest.raises(TaskError) as exc:
        load_task(_write(dest, data))
    assert "bytes formula 'M*N*itemsize_y' uses unknown name 'itemsize_y'" in _single_line(exc)


def test_invalid_yaml(tmp_path: Path) -> None:
    _, dest = _good_task(tmp_path)
    (dest / "task.yaml").write_text("name: rmsnorm\ninputs: {x: [unclosed\n")
    with pytest.raises(TaskError) as exc:
        load_task(dest)
    assert "invalid YAML" in _single_line(exc)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["workloads"][3]["axes"].pop("N"), "misses var axis 'N'"),
        (lambda d: d.__setitem__("workloads", d["workloads"][:3]), "at least 4"),
        (lambda d: [w.__setitem__("cpu", False) for w in d["workloads"]], "no workload has cpu: true"),
        (lambda d: d.__setitem__("dtypes", ["float17"]), "unknown dtype 'float17'"),
        (lambda d: d.__setitem__("entry", "run(x, out, weight)"), "inputs then the outputs"),
        (lambda d: d["distributions"].pop("normal"), "no 'normal' entry"),
        (
            lambda d: d["distributions"].pop("heavy_tailed") and d["distributions"].pop("outliers"),
            "no heavy-tailed",
        ),
        (lambda d: d["tolerances"].pop("bfloat16"), "no entry for output dtype 'bfloat16'"),
        (lambda d: d.__setitem__("inptus", {}), "unknown field 'inptus'"),
        (lambda d: d.__setitem__("languages", ["cuda"]), "unknown language 'cuda'"),
        (
            lambda d: d["distributions"]["normal"].__setitem__("y", {"kind": "normal"}),
            "overrides 'y', which is not an input",
        ),
        (
            lambda d: d["distributions"]["outliers"].__setitem__("x", {"kind": "zipf", "high": "N"}),
            "does not produce float16",
        ),
        (lambda d: d["workloads"][0]["axes"].__setitem__("Z", 3), "unknown axis 'Z'"),
    ],
)
def test_inconsistent_task_files(tmp_path: Path, mutate: Any, expected: str) -> None:
    data, dest = _good_task(tmp_path)
    mutate(data)
    with pytest.raises(TaskError) as exc:
        load_task(_write(dest, data))
    assert expected in _single_line(exc)


def test_reference_without_reference_function(tmp_path: Path) -> None:
    data, dest = _good_task(tmp_path)
    _write(dest, data)
    (dest / "reference.py").write_text("def ref(x, weight, eps):\n    return x\n")
    task = load_task(dest)  # the reference is imported lazily
    with pytest.raises(TaskError) as exc:
        task.run_reference(task.make_inputs("gpt_oss_m7_n2880", "normal", seed=0))
    assert "defines no function 'reference'" in _single_line(exc)


def test_reference_disagreeing_with_contract(tmp_path: Path) -> None:
    data, dest = _good_task(tmp_path)
    _write(dest, data)
    (dest / "reference.py").write_text("def reference(x, weight, *, eps):\n    return x[:, :3].float()\n")
    task = load_task(dest)
    with pytest.raises(TaskError) as exc:
        task.run_reference(task.make_inputs("gpt_oss_m7_n2880", "normal", seed=0), "gpt_oss_m7_n2880")
    assert "reference output 'out' is float32[7, 3], the contract says float16[7, 2880]" in _single_line(exc)


def test_reference_that_raises(tmp_path: Path) -> None:
    data, dest = _good_task(tmp_path)
    _write(dest, data)
    (dest / "reference.py").write_text(
        "def reference(x, weight, *, eps):\n    raise RuntimeError('boom\\nsecond line')\n"
    )
    task = load_task(dest)
    with pytest.raises(TaskError) as exc:
        task.run_reference(task.make_inputs("gpt_oss_m7_n2880", "normal", seed=0))
    assert "reference raised RuntimeError: boom second line" in _single_line(exc)


def test_missing_reference_file(tmp_path: Path) -> None:
    data, dest = _good_task(tmp_path)
    _write(dest, data)
    (dest / "reference.py").unlink()
    with pytest.raises(TaskError, match="reference.py does not exist"):
        load_task(dest)


def test_configs_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, dest = _good_task(tmp_path)
    data["name"] = "custom_norm"
    tasks_root = tmp_path / "configs" / "tasks" / "custom_norm"
    tasks_root.parent.mkdir(parents=True)
    shutil.copytree(dest, tasks_root)
    _write(tasks_root, data)
    monkeypatch.setenv("KSEARCH_CONFIGS", str(tmp_path / "configs"))
    assert configs_dir() == tmp_path / "configs"
    assert list_tasks() == ["custom_norm"]
    assert load_task("custom_norm").name == "custom_norm"
    with pytest.raises(TaskError, match="unknown task 'rmsnorm'; built-in tasks: custom_norm"):
        load_task("rmsnorm")


def test_builtin_name_must_match_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, dest = _good_task(tmp_path)
    target = tmp_path / "configs" / "tasks" / "other_name"
    target.parent.mkdir(parents=True)
    shutil.copytree(dest, target)
    _write(target, data)  # still says name: rmsnorm
    monkeypatch.setenv("KSEARCH_CONFIGS", str(tmp_path / "configs"))
    with pytest.raises(TaskError, match="differs from its directory 'other_name'"):
        load_task("other_name")


def test_index_inputs_with_zipf_generator(tmp_path: Path) -> None:
    """An embedding-gather-like task with a zipf-distributed index input and derived params."""
    data, dest = _good_task(tmp_path)
    data.update(
        name="gather_rows",
        axes={"T": "var", "V": "var", "H": {"kind": "const", "value": 16}},
        params={"scale": "1/sqrt(H)"},
        dtypes=["float32"],
        inputs={
            "ids": {"dtype": "int32", "shape": ["T"], "distribution": {"kind": "randint", "high": "V"}},
            "table": {"dtype": "$dtype", "shape": ["V", "H"]},
        },
        outputs={"out": {"dtype": "$dtype", "shape": ["T", "H"]}},
        entry="run(ids, table, out)",
        workloads=[
            {"name": f"w{i}", "axes": {"T": t, "V": v}, "cpu": i == 0}
            for i, (t, v) in enumerate([(1000, 50), (4, 8), (64, 128), (1, 1)])
        ],
        distributions={
            "normal": {},
            "hot_tokens": {"ids": {"kind": "zipf", "high": "V", "exponent": 1.2}},
            "heavy_tailed": {"table": {"kind": "student_t", "df": 2}},
        },
        tolerances={
            "float32": {"atol": 0, "rtol": 0, "matched_ratio": 1.0, "max_error_cap": 0},
        },
        flops=0,
        bytes="T*itemsize_ids + T*H*(itemsize_table + itemsize_out)",
    )
    _write(dest, data)
    (dest / "reference.py").write_text(
        "def reference(ids, table, *, scale):\n    return table[ids.long()] * scale * (16 ** 0.5)\n"
    )
    task = load_task(dest)
    assert task.params_for("w0") == {"scale": 0.25}
    uniform = task.make_inputs("w0", "normal", seed=0)["ids"]
    hot = task.make_inputs("w0", "hot_tokens", seed=0)["ids"]
    assert uniform.dtype == hot.dtype == torch.int32
    assert 0 <= int(hot.min()) and int(hot.max()) < 50 and int(uniform.max()) < 50
    assert torch.bincount(hot.long()).max() > 3 * torch.bincount(uniform.long()).max()
    inputs = task.make_inputs("w0", "hot_tokens", seed=0)
    out = task.run_reference(inputs)
    assert torch.allclose(out["out"], inputs["table"][inputs["ids"].long()])
    assert task.bytes("w0") == 1000 * 4 + 1000 * 16 * 8


def test_large_inputs_are_bit_identical_across_processes_and_thread_counts():
    # Regression: outlier positions drawn with repeats made the parallel index_put keep an arbitrary
    # value per repeated position, so the harness's worker and parent saw different inputs for one seed.
    import subprocess
    import sys

    code = (
        "import hashlib, sys, torch; torch.set_num_threads(int(sys.argv[1])); from ksearch.task import load_task; "
        "t = load_task('rmsnorm'); wl = t.workload('llama3_8b_prefill_m4096_n4096'); "
        "x = t.make_inputs(wl, 'outliers', 1)['x']; print(hashlib.sha256(x.numpy().tobytes()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code, str(n)], capture_output=True, text=True, check=True
        ).stdout.strip()
        for n in (1, 2, 2)
    }
    assert len(digests) == 1, digests
