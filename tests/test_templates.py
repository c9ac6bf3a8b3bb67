"""Strategy templates of the offline proposer: the kernel files are lint-clean Triton modules, every
template renders candidates that the CPU harness verifies, the risky ones fail the way their rationale
says, the knob spaces validate, and one template per family compiles ahead of time for H100, B200 and
MI355X with a clean audit."""

import ast
import importlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ksearch.audit import audit_compile, audit_failure
from ksearch.compile import CompileRequest, compile_many
from ksearch.errors import ConfigError
from ksearch.evidence import FailureClass, Status
from ksearch.harness.static_checks import failing, static_checks_for_task
from ksearch.propose.base import SearchState, Tried
from ksearch.propose.offline import OfflineProposer, prior_priority
from ksearch.propose.templates import ALL_TEMPLATES, Template, template, templates_for
from ksearch.propose.templates.base import KERNEL_DIR, KERNEL_PACKAGE, knob_key, render_source, task_param
from ksearch.propose.templates.gemm import smem_bytes
from ksearch.target import load_target
from ksearch.task import load_task
from ksearch.worldmodel import WorldModel

TASKS = (
    "rmsnorm",
    "fused_add_rmsnorm",
    "softmax",
    "matmul",
    "silu_and_mul",
    "gqa_decode_attention",
    "moe_topk_routing",
)

# Risky templates: a knob setting that fails on the CPU subset, and the class it fails with. An empty
# setting means the default already fails there (the K-wrapping GEMM is wrong for every BLOCK_K on
# the ragged K=72 workload).
RISKY: dict[str, tuple[dict, FailureClass]] = {
    "rmsnorm/fixed_block": ({"BLOCK_N": 1024}, FailureClass.OUTPUT_NOT_WRITTEN),
    "softmax/fixed_block": ({"BLOCK_N": 256}, FailureClass.OUTPUT_NOT_WRITTEN),
    "matmul/k_unmasked": ({}, FailureClass.NUMERICAL_MISMATCH),
    "silu_and_mul/row_fixed": ({"BLOCK_I": 1024}, FailureClass.OUTPUT_NOT_WRITTEN),
    "gqa_decode_attention/single_block": ({"BLOCK_L": 64}, FailureClass.NUMERICAL_MISMATCH),
    "moe_topk_routing/fixed_experts": ({"BLOCK_E": 32}, FailureClass.NUMERICAL_MISMATCH),
}
DEFAULT_FAILS = {tid for tid, (knobs, _) in RISKY.items() if not knobs}
PAIRS = [(t, task) for t in ALL_TEMPLATES for task in t.tasks]
# One template per family for the ahead-of-time compile test (plus the TMA GEMM).
COMPILED = [
    ("rmsnorm/row_block", "rmsnorm"),
    ("softmax/online", "softmax"),
    ("matmul/tiled", "matmul"),
    ("matmul/tma", "matmul"),
    ("silu_and_mul/flat", "silu_and_mul"),
    ("gqa_decode_attention/split_kv", "gqa_decode_attention"),
    ("moe_topk_routing/row_argmax", "moe_topk_routing"),
]


def pair_id(pair) -> str:
    t, task = pair
    return t.id if t.tasks == (task,) else f"{t.id}[{task}]"


def cpu_dtype(task_name: str) -> str:
    # the interpreter is unreliable for bfloat16; every task has a float16 or float32 variant
    dtypes = load_task(task_name).dtypes
    return "float16" if "float16" in dtypes else "float32"


def evaluate(ev, tmp_path, t: Template, task_name: str, knobs: dict, **kw):
    path = tmp_path / (t.id.replace("/", "__") + f"__{task_name}.py")
    path.write_text(t.render(task_name, knobs))
    return ev.evaluate(path, load_task(task_name), dtype=cpu_dtype(task_name), **kw)


def random_settings(t: Template, n: int, salt: str) -> list[dict]:
    rng = random.Random(f"{t.id}:{salt}")  # str seeds hash with sha512: the same draws in every process
    return [t.sample_knobs(rng) for _ in range(n)]


# ---- registry and knob spaces ----------------------------------------------------------------------


def test_every_task_has_templates_and_ids_are_unique():
    ids = [t.id for t in ALL_TEMPLATES]
    assert len(ids) == len(set(ids))
    for task in TASKS:
        found = templates_for(task)
        assert len(found) >= 3, task
        assert all(task in t.tasks for t in found)
    assert {task for t in ALL_TEMPLATES for task in t.tasks} == set(TASKS)
    assert templates_for("no_such_task") == []


def test_template_lookup_names_the_known_ids():
    assert template("matmul/tiled").id == "matmul/tiled"
    with pytest.raises(ConfigError) as err:
        template("matmul/nope")
    assert "matmul/tiled" in str(err.value) and "matmul/nope" in str(err.value)


def test_every_family_has_a_risky_template_that_says_when_it_fails():
    assert {task for tid in RISKY for task in template(tid).tasks} == set(TASKS)
    for tid in RISKY:
        assert "fails when" in template(tid).rationale.lower(), tid


@pytest.mark.parametrize("t", ALL_TEMPLATES, ids=lambda t: t.id)
def test_template_metadata_and_knob_space(t):
    assert t.decision and t.title and t.description and t.rationale
    assert 1 <= t.difficulty <= 5 and t.expected_speedup > 0
    assert t.id.split("/")[0] in t.tasks or t.id.startswith("rmsnorm/")
    space = {knob_key(s) for s in t.settings()}
    assert knob_key(t.default_knobs()) in space  # the default obeys the template's own constraints
    draws = {knob_key(t.sample_knobs(random.Random(i))) for i in range(20)}
    assert draws <= space and len(draws) > 1  # draws from the space, not the default fallback
    near = t.neighbours(t.default_knobs())
    assert near and {knob_key(n) for n in near} <= space
    assert all(sum(n[k] != v for k, v in t.default_knobs().items()) == 1 for n in near)


def _state(task: str) -> SearchState:
    return SearchState(task=load_task(task), wm=WorldModel.new("t"), tried=Tried(), best_score=None)


def test_templates_with_one_vendors_launch_options_are_searched_for_its_targets_only():
    hip_only = {t.id for t in ALL_TEMPLATES if t.backends == ("hip",)}
    assert "matmul/tiled_mfma" in hip_only
    assert not template("matmul/tiled_mfma").valid({"BLOCK_M": 256, "BLOCK_N": 256})  # spills on gfx950
    assert not hip_only & {t.id for t in templates_for("matmul", "cuda")}
    assert hip_only <= {t.id for t in templates_for("matmul", "hip")}
    assert "\nwaves_per_eu = None\n" in template("matmul/tiled").render(
        "matmul"
    )  # not passed: CUDA refuses it
    plan = OfflineProposer("matmul", "hip").propose_actions(_state("matmul"))
    assert any("matmul/tiled_mfma" in str(op.fields) for ops in plan for op in ops)
    plan = OfflineProposer("matmul", "cuda").propose_actions(_state("matmul"))
    assert not any("tiled_mfma" in str(op.fields) for ops in plan for op in ops)


@pytest.mark.slow  # two gfx950 compiles, 10 s each
def test_the_mfma_knobs_reach_the_gfx950_code(tmp_path):
    t = template("matmul/tiled_mfma")
    requests = []
    for nonkdim, waves in ((16, 0), (32, 2)):
        path = tmp_path / f"mfma{nonkdim}.py"
        small = {"BLOCK_M": 128, "BLOCK_N": 128, "matrix_instr_nonkdim": nonkdim, "waves_per_eu": waves}
        path.write_text(t.render("matmul", small))
        requests.append(
            CompileRequest(source_path=str(path), task="matmul", target="mi355x", dtype="float16")
        )
    r16, r32 = compile_many(requests, cache_dir=tmp_path / "cache", jobs=2)
    if not r16.ok and r16.failure_class is FailureClass.SKIPPED_TOOLCHAIN_MISSING:
        pytest.skip(r16.message)
    gcn16, gcn32 = (Path(r.kernels[0].artifacts["amdgcn"]).read_text() for r in (r16, r32))
    assert "v_mfma_f32_16x16x32_f16" in gcn16 and "v_mfma_f32_32x32" not in gcn16
    assert "v_mfma_f32_32x32x16_f16" in gcn32 and "v_mfma_f32_16x16" not in gcn32
    llir16, llir32 = (Path(r.kernels[0].artifacts["llir"]).read_text() for r in (r16, r32))
    assert '"amdgpu-waves-per-eu"="2,2"' in llir32 and "amdgpu-waves-per-eu" not in llir16


@pytest.mark.slow  # two sm_90a and two sm_100a compiles
def test_warp_specialisation_and_flattening_reach_the_code(tmp_path):
    t = template("matmul/persistent_tma")
    requests = []
    for name, knobs in {"ws": {"WARP_SPECIALIZE": True}, "plain": {}, "flat": {"FLATTEN": True}}.items():
        path = tmp_path / f"{name}.py"
        path.write_text(t.render("matmul", knobs))
        for target in ("h100", "b200"):
            requests.append(
                CompileRequest(source_path=str(path), task="matmul", target=target, dtype="float16")
            )
    results = compile_many(requests, cache_dir=tmp_path / "cache", jobs=2)
    ptx = {}
    for req, r in zip(requests, results):
        assert r.ok, r.message
        ptx[(Path(req.source_path).stem, req.target)] = Path(r.kernels[0].artifacts["ptx"]).read_text()
    assert "tcgen05.mma" in ptx[("ws", "b200")] and "setmaxnreg" in ptx[("ws", "b200")]
    assert "setmaxnreg" not in ptx[("plain", "b200")]  # the knob, not the template, splits the warps
    for name in ("ws", "plain", "flat"):
        assert "wgmma.mma_async" in ptx[(name, "h100")] and "cp.async.bulk.tensor" in ptx[(name, "h100")]
    # flattening rewrites the sm_90a loop nest into one pipelined loop: more code (1.4x the PTX)
    assert len(ptx[("flat", "h100")]) > 1.25 * len(ptx[("plain", "h100")])


def test_render_validates_knobs_and_task():
    t = template("rmsnorm/row_block")
    with pytest.raises(ValueError, match="unknown knob"):
        t.render("rmsnorm", {"BLOCK": 1024})
    with pytest.raises(ValueError, match="num_warps"):
        t.render("rmsnorm", {"num_warps": 3})
    with pytest.raises(ValueError, match="EVICT"):
        t.render("rmsnorm", {"EVICT": "sometimes"})
    with pytest.raises(ValueError, match="not 'softmax'"):
        t.render("softmax", {})
    with pytest.raises(ValueError):
        template("matmul/split_k").render("matmul", {"SPLIT_K": True})  # a bool is not the int 1
    assert not t.valid({"num_warps": 3}) and not t.valid({"nope": 1})


def test_render_header_names_template_task_and_knobs():
    t = template("matmul/tiled")
    src = t.render("matmul", {"BLOCK_M": 64})
    lines = src.splitlines()
    assert lines[0] == "# ksearch template: matmul/tiled"
    assert lines[1] == "# task: matmul"
    assert json.loads(lines[2].removeprefix("# knobs: ")) == {**t.default_knobs(), "BLOCK_M": 64}
    # the knob constants carry the setting: the chosen value and the defaults of the others
    assert {"BLOCK_M = 64", "BLOCK_N = 256", "BLOCK_K = 64", "GROUP_M = 8"} <= set(lines)
    assert "autotune" not in src


def test_gemm_space_holds_the_known_fast_tiles_and_rejects_oversized_ones():
    for tid in ("matmul/tiled", "matmul/tma"):
        t = template(tid)
        fast = {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 8, "num_stages": 3}
        assert t.default_knobs() == fast
        assert t.valid({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 4})
        big = {"BLOCK_M": 256, "BLOCK_N": 256, "BLOCK_K": 128, "num_warps": 8, "num_stages": 5}
        assert smem_bytes(big) > 228 * 1024 and not t.valid(big)
        # fits shared memory but not the register file: a 256x256 fp32 accumulator on 4 warps
        assert not t.valid({"BLOCK_M": 256, "BLOCK_N": 256, "BLOCK_K": 32, "num_warps": 4, "num_stages": 2})
    assert template("matmul/persistent").valid(
        {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 4}
    )


@pytest.mark.parametrize("t", ALL_TEMPLATES, ids=lambda t: t.id)
def test_every_knob_value_renders_a_source_the_static_checks_accept(t):
    settings = [t.default_knobs()]
    for name, values in t.knobs.items():
        settings += [{**t.default_knobs(), name: v} for v in values[1:]]
    for task_name in t.tasks:
        task = load_task(task_name)
        for knobs in settings:
            src = t.render(task_name, knobs)
            compile(src, "<candidate>", "exec")
            assert not failing(static_checks_for_task(src, "candidate.py", task)), (
                knobs,
                failing(static_checks_for_task(src, "candidate.py", task)),
            )
            assert "autotune" not in src and "import os" not in src


# ---- the kernel files and their rendering ----------------------------------------------------------


def _top_level(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(constants assigned, functions defined) at the top level of a module."""
    constants = {
        stmt.targets[0].id
        for stmt in tree.body
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
    }
    return constants, {stmt.name for stmt in tree.body if isinstance(stmt, ast.FunctionDef)}


@pytest.mark.parametrize("t", ALL_TEMPLATES, ids=lambda t: t.id)
def test_kernel_file_is_a_triton_module_with_knob_constants_and_one_entry_per_task(t):
    tree = ast.parse((KERNEL_DIR / t.source).read_text())
    constants, functions = _top_level(tree)
    # an entry is a function, or made by an entry factory: `rmsnorm, fused_add_rmsnorm = rmsnorm_entries(...)`
    made = {
        e.id
        for stmt in tree.body
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Tuple)
        for e in stmt.targets[0].elts
        if isinstance(e, ast.Name)
    }
    assert set(t.knobs) | set(t.params) <= constants
    assert set(t.tasks) <= functions | made and "run" not in functions | made
    module = importlib.import_module(f"{KERNEL_PACKAGE}.{t.source.removesuffix('.py')}")  # imports as is
    assert all(callable(getattr(module, task)) for task in t.tasks)
    if t.source == f"{t.id.replace('/', '_')}.py":  # the file shows its own template's defaults
        assert {name: getattr(module, name) for name in t.knobs} == t.default_knobs()


def test_kernel_files_pass_ruff_with_nothing_excluded():  # ruff comes with the dev extra
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", str(KERNEL_DIR)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_rendered_candidate_is_self_contained_with_the_setting_and_the_tasks_entry():
    t = template("rmsnorm/multi_row")
    task = load_task("fused_add_rmsnorm")
    src = t.render(task.name, {"ROWS": 16, "num_warps": 2, "EVICT": "stream"})
    tree = ast.parse(src)
    constants, functions = _top_level(tree)
    # the task's entry became run, the other task's entry is gone, the shared helpers it uses came in
    assert "run" in functions and not functions & {"rmsnorm", "fused_add_rmsnorm"}
    assert {"load_row", "launch_warps", "eviction_policies", "rows_per_program"} <= functions
    # not imported, not copied; of the entry factory only the task's entry came in (as run)
    assert not functions & {"num_sms", "rmsnorm_whole_row_kernel", "rmsnorm_entries"}
    assert not [s for s in tree.body if isinstance(s, ast.ImportFrom) and s.module.startswith("ksearch")]
    run = next(s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "run")
    assert [a.arg for a in run.args.args] == list(task.entry_args)
    lines = src.splitlines()
    assert {
        "ROWS = 16",
        "num_warps = 2",
        "EVICT = 'stream'",
        "eps = " + repr(task_param(task.name, "eps", 0.0)),
    } <= set(lines)


def test_render_source_says_what_a_kernel_file_lacks():
    with pytest.raises(ValueError, match="no constant BLOCK_Q"):
        render_source("softmax_online.py", "softmax", ("softmax",), {"BLOCK_Q": 1})
    with pytest.raises(ValueError, match="no entry `def rmsnorm\\(`"):
        render_source("softmax_online.py", "rmsnorm", ("softmax", "rmsnorm"), {})


# ---- CPU verification (Triton interpreter) ---------------------------------------------------------------


@pytest.mark.parametrize("pair", [p for p in PAIRS if p[0].id not in DEFAULT_FAILS], ids=pair_id)
def test_default_knobs_pass_on_cpu(evaluator, tmp_path, pair):
    t, task_name = pair
    packet = evaluate(evaluator, tmp_path, t, task_name, {}, seeds=(0,))  # the slow sweep adds seed 1
    assert packet.status.value == "pass", (packet.failure_class, packet.message)
    assert set(packet.validation.workloads_checked) == {
        w.name for w in load_task(task_name).workloads(cpu_only=True)
    }


@pytest.mark.parametrize("tid", ["matmul/split_k", "matmul/split_k_fixup"])
def test_split_k_sized_to_fill_the_sms_passes_on_cpu(evaluator, tmp_path, tid):
    packet = evaluate(evaluator, tmp_path, template(tid), "matmul", {"SPLIT_K": "sms"}, seeds=(0,))
    assert packet.status.value == "pass", (packet.failure_class, packet.message)


def test_sm_filling_split_count_fills_whole_waves():
    from ksearch.propose.templates.kernels.launch import k_splits

    assert k_splits(8, 48, 64, 132) == 8  # a number is taken as it is
    # M=16, N=6144 in 128-wide tiles on an H100: 4 slices leave 27% of the second wave idle, 5 fill 91%
    assert k_splits("sms", 48, 64, 132) == 5
    assert k_splits("sms", 256, 64, 132) == 1  # tiles enough: no split
    assert k_splits("sms", 48, 3, 132) == 3  # never more slices than K steps


@pytest.mark.parametrize("tid", sorted(RISKY))
def test_risky_setting_is_rejected_with_its_correctness_class(evaluator, tmp_path, tid):
    knobs, expected = RISKY[tid]
    t = template(tid)
    packet = evaluate(evaluator, tmp_path, t, t.tasks[0], knobs)
    assert packet.status is Status.FAIL, packet.message
    assert packet.failure_class is expected, (packet.failure_class, packet.message)


def test_risky_default_passes_the_cpu_subset_but_fails_a_large_workload(evaluator, tmp_path):
    # rmsnorm/fixed_block (BLOCK_N=4096) passes every CPU workload (N <= 4096) above; N=7168 breaks it
    packet = evaluate(
        evaluator,
        tmp_path,
        template("rmsnorm/fixed_block"),
        "rmsnorm",
        {},
        workloads=["deepseek_v3_decode_m64_n7168"],
        seeds=(0,),
    )
    assert packet.status is Status.FAIL
    assert packet.failure_class is FailureClass.OUTPUT_NOT_WRITTEN, packet.message


@pytest.mark.parametrize("t", [t for t in ALL_TEMPLATES if t.id not in RISKY], ids=lambda t: t.id)
def test_a_random_knob_setting_passes_on_cpu(evaluator, tmp_path, t):
    # one setting and one seed keep the default run near 2.5 minutes; the slow sweep below adds two
    # more settings per template and task, with both seeds
    (knobs,) = random_settings(t, 1, "fast")
    task_name = t.tasks[-1]
    packet = evaluate(evaluator, tmp_path, t, task_name, knobs, seeds=(0,))
    assert packet.status.value == "pass", (task_name, knobs, packet.failure_class, packet.message)


@pytest.mark.slow  # the fast tier runs one setting per template above
@pytest.mark.parametrize("pair", [p for p in PAIRS if p[0].id not in RISKY], ids=pair_id)
def test_random_knob_sweep_passes_on_cpu(evaluator, tmp_path, pair):
    t, task_name = pair
    for knobs in random_settings(t, 2, f"slow:{task_name}"):
        packet = evaluate(evaluator, tmp_path, t, task_name, knobs)
        assert packet.status.value == "pass", (knobs, packet.failure_class, packet.message)


# ---- ahead-of-time compile ---------------------------------------------------------------------------------


@pytest.mark.slow  # two minutes of ptxas and LLVM; tests/test_audit.py covers each target's path quickly
def test_one_template_per_family_compiles_for_h100_b200_mi355x_with_a_clean_audit(tmp_path):
    targets = ("h100", "b200", "mi355x")
    requests, jobs = [], []
    for tid, task_name in COMPILED:
        path = tmp_path / (tid.replace("/", "__") + ".py")
        path.write_text(template(tid).render(task_name, {}))
        for target in targets:
            requests.append(
                CompileRequest(
                    source_path=str(path), task=task_name, target=target, dtype=cpu_dtype(task_name)
                )
            )
            jobs.append((tid, task_name, target))
    results = compile_many(requests, cache_dir=tmp_path / "cache", jobs=2)
    for (tid, task_name, target), result in zip(jobs, results):
        assert result.ok, (tid, target, result.failure_class, result.message)
        assert result.kernels, (tid, target)
        task = load_task(task_name)
        audit = audit_compile(result, load_target(target), task.spec.op_family, cpu_dtype(task_name))
        assert audit_failure(audit) is None, (tid, target, [v for v in audit.verdicts if not v.ok])
        if tid.startswith("matmul/"):
            # the GEMMs reach each target's matrix-core path: wgmma, tcgen05, MFMA
            mma = {"h100": "wgmma", "b200": "tcgen05.mma", "mi355x": "v_mfma"}[target]
            assert mma in audit.families_found, (tid, target, audit.families_found)
        if tid == "matmul/tma" and target != "mi355x":
            assert "tma (cp.async.bulk.tensor)" in audit.families_found, audit.families_found


def test_the_plan_ranks_split_k_first_for_decode_shapes_and_last_for_prefill():
    def priorities(workloads: list[str]) -> dict[str, float]:
        task = load_task("matmul").only(workloads)
        state = SearchState(task=task, wm=WorldModel.new("t"), tried=Tried(), best_score=None)
        plan = OfflineProposer(task, "cuda").propose_actions(state)
        return {
            op.fields["attrs"]["template"]: op.fields["priority"]
            for ops in plan
            for op in ops
            if "attrs" in op.fields
        }

    split = {"matmul/split_k", "matmul/split_k_fixup"}
    decode = priorities(["llama3_8b_qkv_decode_m16_n6144_k4096", "llama3_8b_gemv_m1_n4096_k4096"])
    square = priorities(["square_m4096_n4096_k4096"])
    others = set(decode) - split
    assert min(decode[t] for t in split) > max(decode[t] for t in others)  # split-K first for decode
    assert max(square[t] for t in split) < min(square[t] for t in others)  # and last for prefill
    assert square["matmul/tiled"] == decode["matmul/tiled"]  # a shape-blind template keeps its prior
    # one output tile but K = 72: nothing to split, so split-K stays behind the tiled kernel
    tiny = priorities(["square_m4096_n4096_k4096", "ragged_m96_n80_k72"])
    assert max(tiny[t] for t in split) < tiny["matmul/tiled"]
    assert tiny["matmul/k_unmasked"] < tiny["matmul/tiled"] == square["matmul/k_unmasked"]  # K=72 breaks it


def test_whole_row_softmax_templates_yield_to_streaming_ones_on_vocabulary_rows():
    """A whole row in registers spills at 128K elements and a fixed block leaves the tail unwritten:
    on a run with vocabulary rows the streaming templates come first, on attention rows the whole row."""

    def priorities(workloads: list[str]) -> dict[str, float]:
        task = load_task("softmax").only(workloads)
        axes = [task.axes_for(w) for w in task.spec.workloads]
        return {t.id.split("/")[1]: prior_priority(t, axes) for t in templates_for("softmax", "cuda")}

    vocab = priorities(["attn_scores_m4096_n4096", "llama3_vocab_m64_n128256", "scores_m17_n1000"])
    assert min(vocab["online"], vocab["three_loop"]) > max(vocab["row_block"], vocab["fixed_block"])
    rows = priorities(["attn_scores_m4096_n4096", "attn_scores_m16384_n16384"])
    assert rows["row_block"] > max(rows["online"], rows["three_loop"])
    assert rows["fixed_block"] < rows["row_block"]  # 16384 > its largest BLOCK_N
