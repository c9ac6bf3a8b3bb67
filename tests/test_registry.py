"""The kernel library: `ksearch export` turns runs' winners into a package that imports without
ksearch, selects by capability, dtype, shape and priority, explains why, and falls back loudly."""

import json
import random
import subprocess
import sys
import sysconfig
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from clitools import assert_clean_error, ksearch
from runconfigs import SMALL_RUN, write_run_config

from ksearch.registry.export import ExportError, Found, export_runs, merge, op_spec, run_kernels, vendor
from ksearch.registry.pkg_bench import recorded
from ksearch.registry.pkg_bench import vendor as vendor_op
from ksearch.registry.pkg_numerics import compare, elements, output_tolerances, sample_shapes
from ksearch.registry.select import (
    AxisRange,
    Kernel,
    Manifest,
    Platform,
    axes_of,
    explain,
    output_shapes,
)
from ksearch.search.run import start_run
from ksearch.task import load_task

# ---- selection, on a manifest written by hand ---------------------------------------------------


def kernel(id: str, capability: str, priority: float, measured: bool = True, **changes) -> Kernel:
    base = Kernel(
        id=id,
        op="rmsnorm",
        dtype="float16",
        capability=capability,
        target=capability,
        module=id,
        language="triton",
        constraints={"M": AxisRange(1, 4096), "N": AxisRange(128, 8192, 64)},
        params={"eps": 1e-6},
        priority=priority,
        measured=measured,
        basis="test",
        verified_on="test",
        verified_shapes=[{"M": 1, "N": 4096}],
        provenance={},
    )
    return replace(base, **changes)


def manifest(*kernels: Kernel) -> Manifest:
    return Manifest("lib", {"rmsnorm": op_spec(load_task("rmsnorm"))}, list(kernels))


SHAPE = {"M": 64, "N": 4096}


def test_a_kernel_for_another_capability_is_never_chosen():
    m = manifest(kernel("amd", "gfx950", 9.0), kernel("hopper", "sm_90a", 1.1))
    on_hopper = explain(m, "rmsnorm", Platform("sm_90"), "float16", SHAPE)
    assert on_hopper.chosen is not None and on_hopper.chosen.id == "hopper"
    assert on_hopper.verdicts[0].reason == "capability: built for gfx950, this platform is sm_90"
    on_mi355x = explain(m, "rmsnorm", Platform("gfx950"), "float16", SHAPE)
    assert on_mi355x.chosen is not None and on_mi355x.chosen.id == "amd"
    assert explain(m, "rmsnorm", Platform("sm_100"), "float16", SHAPE).chosen is None


def test_measured_kernels_outrank_unmeasured_ones_and_priority_orders_the_rest():
    m = manifest(
        kernel("estimate", "sm_90a", 0.9, measured=False),
        kernel("slow", "sm_90a", 1.2),
        kernel("fast", "sm_90a", 1.8),
    )
    e = explain(m, "rmsnorm", Platform("sm_90"), "float16", SHAPE)
    assert [v.kernel.id for v in e.verdicts] == ["fast", "slow", "estimate"]
    assert e.chosen is not None and e.chosen.id == "fast"
    # the fast one does not cover this shape: the next one runs
    e = explain(m, "rmsnorm", Platform("sm_90"), "float16", {"M": 64, "N": 4100})
    assert all(v.reason == "shape: N=4100 is not a multiple of 64 (N % 64)" for v in e.verdicts)
    narrow = replace(m.kernels[2], constraints={"M": AxisRange(1, 8), "N": AxisRange(128, 8192)})
    e = explain(manifest(m.kernels[0], m.kernels[1], narrow), "rmsnorm", Platform("sm_90"), "float16", SHAPE)
    assert e.chosen is not None and e.chosen.id == "slow"
    assert e.verdicts[0].reason == "shape: M=64 is outside the verified range 1..8"
    assert e.verdicts[2].reason is None and not e.verdicts[2].chosen  # kept, lower priority


def test_dtype_params_and_the_interpreter_filter_with_a_reason():
    m = manifest(kernel("cpu", "cpu", 1.0))
    assert explain(m, "rmsnorm", Platform("cpu"), "float16", SHAPE).verdicts[0].reason == (
        "capability: a CPU kernel runs in the Triton interpreter, off unless LIB_INTERPRET=1"
    )
    on = Platform("cpu", interpret=True)
    assert explain(m, "rmsnorm", on, "float16", SHAPE).chosen is not None
    assert explain(m, "rmsnorm", on, "float32", SHAPE).verdicts[0].reason == (
        "dtype: verified for float16, the call is float32"
    )
    other_eps = explain(m, "rmsnorm", on, "float16", SHAPE, {"eps": 1e-5})
    assert other_eps.verdicts[0].reason == "param: eps=1e-05 differs from the verified eps=1e-06"


def test_constraints_record_the_range_and_the_shared_power_of_two():
    assert AxisRange.of([4096, 2880]) == AxisRange(2880, 4096, 64)
    assert AxisRange.of([1, 7]) == AxisRange(1, 7, 1)


def test_axes_come_from_the_inputs_and_formula_dims_are_solved():
    silu = op_spec(load_task("silu_and_mul"))
    axes = axes_of(silu, [(3, 256)])  # x: [M, 2*I]
    assert axes == {"M": 3, "I": 128}
    assert output_shapes(silu, axes) == [(3, 128)]
    with pytest.raises(ValueError, match="weight has shape"):
        axes_of(op_spec(load_task("rmsnorm")), [(2, 64), (65,)])


def test_a_task_whose_outputs_do_not_follow_from_its_inputs_is_refused():
    with pytest.raises(ExportError, match="output topk_weights does not follow from its inputs"):
        op_spec(load_task("moe_topk_routing"))


def test_template_helpers_are_vendored_and_other_ksearch_imports_refused():
    source = "from ksearch.propose.templates.kernels.rmsnorm_parts import rmsnorm_entries as make\n"
    vendored: dict[str, str] = {}
    out = vendor(source, vendored)
    assert out == "from ._vendor.rmsnorm_parts import rmsnorm_entries as make\n"
    assert set(vendored) == {"rmsnorm_parts", "launch"}  # and what rmsnorm_parts imports
    assert "from .launch import eviction_policies" in vendored["rmsnorm_parts"]
    assert "ksearch" not in vendored["rmsnorm_parts"] + vendored["launch"]
    with pytest.raises(ExportError, match="needs ksearch at run time"):
        vendor("import ksearch.task\n", {})


def test_random_shapes_respect_every_constraint_and_the_size_cap():
    spec = op_spec(load_task("rmsnorm"))
    constraints = {"M": AxisRange(1, 4096), "N": AxisRange(100, 8192, 64)}
    shapes = sample_shapes(spec, constraints, 200, random.Random(0), max_elements=1 << 16)
    assert all(r.violation(a, s[a]) is None for s in shapes for a, r in constraints.items())
    assert all(s["N"] >= 128 and elements(spec, s) <= 1 << 16 for s in shapes)  # 100 is no multiple of 64
    assert len({s["M"] for s in shapes}) > 10 and len({s["N"] for s in shapes}) > 10
    assert shapes == sample_shapes(spec, constraints, 200, random.Random(0), max_elements=1 << 16)
    # silu_and_mul's x is [M, 2*I]: the cap counts formula dims too; when it cannot be met, every
    # axis ends at its minimum and the shape stays valid
    silu = op_spec(load_task("silu_and_mul"))
    wide = {"M": AxisRange(64, 4096, 64), "I": AxisRange(1024, 1024)}
    assert sample_shapes(silu, wide, 1, random.Random(1), 10) == [{"M": 64, "I": 1024}]
    assert elements(silu, {"M": 64, "I": 1024}) == 64 * 2048 + 64 * 1024
    with pytest.raises(ValueError, match="no multiple of 64 in 65..127"):
        sample_shapes(spec, {"N": AxisRange(65, 127, 64)}, 1, random.Random(0), 1 << 16)


def test_the_tolerance_check_is_the_tasks():
    import torch

    (tol,) = output_tolerances(op_spec(load_task("rmsnorm")), "float16")
    assert tol == {"atol": 1e-2, "rtol": 1e-2, "matched_ratio": 0.999, "max_error_cap": 0.5}
    ref = torch.full((1000,), 2.0)
    assert compare(ref + 0.029, ref, tol)[2]  # within atol + rtol * |ref| = 0.03
    worst, matched, passed = compare(ref + 0.031, ref, tol)
    assert (round(worst, 3), matched, passed) == (0.031, 0.0, False)
    one_off = ref.clone()
    one_off[0] = 2.4  # one element in a thousand is allowed to miss, within the error cap
    assert compare(one_off, ref, tol)[1:] == (0.999, True)
    one_off[0] = 2.6  # but none by more than max_error_cap
    assert not compare(one_off, ref, tol)[2]
    nan = ref.clone()
    nan[:2] = float("nan")  # a NaN where the reference is finite never matches
    assert compare(nan, ref, tol)[::2] == (float("inf"), False)
    ref_inf = ref.clone()
    ref_inf[0] = float("inf")  # the reference's own inf is not scored
    assert compare(ref_inf.clone(), ref_inf, tol) == (0.0, 1.0, True)
    with pytest.raises(KeyError, match="no tolerance for int8"):
        output_tolerances(op_spec(load_task("rmsnorm")), "int8")


def test_bench_rivals_take_the_references_arguments_and_packets_are_read_per_workload(tmp_path):
    import importlib.util

    import torch

    torch.manual_seed(0)
    for op, inputs in {
        "rmsnorm": [torch.randn(3, 64), torch.randn(64)],
        "softmax": [torch.randn(3, 64)],
        "matmul": [torch.randn(3, 16), torch.randn(16, 8)],
    }.items():
        task = load_task(op)
        spec = importlib.util.spec_from_file_location(op, task.reference_path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        params = op_spec(task).params
        found = vendor_op(op)
        assert found is not None
        assert torch.allclose(found[1](*inputs, **params), module.reference(*inputs, **params), atol=1e-5)
    assert vendor_op("silu_and_mul") is None
    rms = op_spec(load_task("rmsnorm"))
    k = kernel("k", "sm_90a", 1.0, provenance={"packet": "packets/p.json"})
    assert recorded(rms, k, {"M": 1, "N": 4096}, tmp_path) == "packet: none"
    (tmp_path / "packets").mkdir()
    timing = {"workload": "llama3_8b_decode_m1", "median_us": 2.0, "speedup": 3.0, "baseline": "reference"}
    timing["baselines_us"] = {"torch_eager": 6.0, "torch_compile": 3.0, "vendor": None}
    (tmp_path / "packets" / "p.json").write_text(json.dumps({"performance": {"workloads": [timing]}}))
    assert recorded(rms, k, {"M": 1, "N": 4096}, tmp_path) == (
        "packet: 3.00x over reference (torch_eager 3.00x, torch_compile 1.50x)"
    )
    assert recorded(rms, k, {"M": 7, "N": 2880}, tmp_path) == "packet: this shape was not timed"
    (tmp_path / "packets" / "p.json").write_text(json.dumps({"performance": None}))
    assert recorded(rms, k, {"M": 1, "N": 4096}, tmp_path) == "packet: unmeasured"


# ---- exported runs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("library")
    a = start_run(write_run_config(tmp), log_dir=tmp / "runs")
    other = {**SMALL_RUN["eval"], "workloads": ["qwen3_qk_norm_m96_n128", "llama3_8b_decode_m1"]}
    (tmp / "b").mkdir()
    b = start_run(
        write_run_config(tmp / "b", seed=5, budget={"evaluations": 2, "wall_s": 600}, eval=other),
        log_dir=tmp / "runs",
    )
    return a.run_dir, b.run_dir


def isolated_python(tmp_path: Path) -> Path:
    """A venv that sees torch and triton (a .pth naming their site-packages, whose own .pth files,
    ksearch's editable install among them, are not processed) but not ksearch."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "torch_triton.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin" / "python"


USE = textwrap.dedent(
    """
    import json, sys, warnings
    import torch
    try:
        import ksearch
        has_ksearch = True
    except ImportError:
        has_ksearch = False
    import lib
    from lib.references.rmsnorm import reference
    op = lib.operators["rmsnorm"]
    torch.manual_seed(0)
    x, w = torch.randn(5, 4096, dtype=torch.float16), torch.randn(4096, dtype=torch.float16)
    y = lib.rmsnorm(x, w)
    chosen = [k.id if k else None for k in op.choices.values()]
    err = (y.float() - reference(x, w, eps=1e-6).float()).abs().max().item()
    xo, wo = torch.randn(3, 1000, dtype=torch.float16), torch.randn(1000, dtype=torch.float16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yo = [lib.rmsnorm(xo, wo), lib.rmsnorm(xo, wo), lib.rmsnorm(x, w)]
    fallback_equal = torch.equal(yo[0], reference(xo, wo, eps=1e-6))

    class Block(torch.nn.Module):
        def forward(self, x, w):
            return lib.rmsnorm(x * 2, w) + 1

    eager = Block()(x, w)
    compiled = torch.compile(Block(), fullgraph=True)(x, w)
    print(json.dumps({
        "has_ksearch": has_ksearch, "chosen": chosen, "err": err, "fallback_equal": fallback_equal,
        "warnings": [str(c.message) for c in caught], "selections": op.selections,
        "compiled_matches": torch.equal(eager, compiled), "mm": hasattr(lib, "mm"),
    }))
    """
)


@pytest.mark.slow
def test_an_exported_run_installs_without_ksearch_and_runs_its_kernel(runs, tmp_path):
    result = export_runs([runs[0]], tmp_path / "out", "lib")
    caps = sorted(k.capability for k in result.kept)
    assert caps == ["cpu", "sm_90a"]  # compiled for h100, verified in the interpreter
    pkg = tmp_path / "out" / "lib"
    packet = json.loads((pkg / result.kept[0].provenance["packet"]).read_text())
    assert packet["candidate"]["source_hash"] == result.kept[0].provenance["source_hash"]
    assert all(not k.measured for k in result.kept)
    python = isolated_python(tmp_path)
    install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation"]
    subprocess.run([*install, tmp_path / "out"], check=True, cwd=tmp_path)
    env = {"LIB_INTERPRET": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([python, "-c", USE], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not seen["has_ksearch"]
    assert seen["chosen"] == [k.id for k in result.kept if k.capability == "cpu"]
    assert seen["err"] <= 1e-2  # the task's float16 tolerance
    # M=3, N=1000 is outside every kernel's verified shapes: the reference, one warning for two calls
    assert seen["fallback_equal"] and len(seen["warnings"]) == 1
    assert "N=1000 is outside the verified range 2880..4096" in seen["warnings"][0]
    assert seen["selections"] == 2  # one per signature: the repeated calls hit the cache
    assert seen["compiled_matches"]
    # the package explains with the same code and text as `ksearch registry`
    args = ["select", "--op", "rmsnorm", "--device", "gfx950", "--shape", "M=4,N=4096"]
    inside = subprocess.run([python, "-m", "lib.registry", *args], capture_output=True, text=True, env=env)
    outside = ksearch("registry", *args[:1], tmp_path / "out", *args[1:])
    assert inside.returncode == outside.returncode == 0, inside.stderr + outside.stderr
    assert inside.stdout == outside.stdout
    assert "filtered out: capability: built for sm_90a, this platform is gfx950" in inside.stdout
    # numerics: the CPU kernel, called directly, matches the reference on verified and random shapes
    cpu_id, gpu_id = (next(k.id for k in result.kept if k.capability == c) for c in ("cpu", "sm_90a"))
    numerics = [python, "-m", "lib.numerics", "rmsnorm", "--device", "cpu", "--shapes", "2"]
    checked = subprocess.run(numerics, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert f"{gpu_id}: skipped (capability: built for sm_90a, this platform is cpu)" in lines
    assert sum(line.startswith(f"{cpu_id} M=") and line.endswith("pass") for line in lines) == 2
    assert sum(line.startswith(cpu_id) and line.endswith("pass (random shape)") for line in lines) == 2
    assert lines[-1] == "numerics rmsnorm on cpu: 4 checks, 4 passed, 0 failed; 1 kernels skipped"
    bench = subprocess.run([python, "-m", "lib.bench", "rmsnorm"], capture_output=True, text=True, env=env)
    assert bench.returncode == 0 and "nothing is timed on the CPU" in bench.stdout, bench.stderr
    # a kernel 5% off fails every check, and the summary names it
    (installed,) = (tmp_path / "venv").glob(
        f"lib/python*/site-packages/lib/kernels/{result.kept[0].module}.py"
    )
    installed.write_text(
        installed.read_text() + "\n_run = run\n\ndef run(*args):\n    _run(*args)\n    args[-1].mul_(1.05)\n"
    )
    wrong = subprocess.run(numerics, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "4 checks, 0 passed, 4 failed" in wrong.stdout
    assert f"  failed: {cpu_id} M=1,N=4096: max abs err" in wrong.stdout


@pytest.mark.slow
def test_two_runs_merge_and_a_dominated_kernel_is_dropped(runs, tmp_path):
    result = export_runs(list(runs), tmp_path / "out", "lib")
    ops = {k.op for k in result.kept}
    assert ops == {"rmsnorm"}
    sources = {k.provenance["source_hash"] for k in result.kept}
    m = Manifest.load(tmp_path / "out" / "lib")
    for k in m.kernels:  # every kept kernel is the choice for one of its verified shapes
        assert any(
            explain(m, "rmsnorm", Platform(k.capability, True), k.dtype, s).chosen == k
            for s in k.verified_shapes
        )
    if len(sources) == 2:  # the runs found different kernels, each best where the other is unverified
        assert {k.provenance["run"] for k in result.kept} == {runs[0].name, runs[1].name}
    else:  # the same kernel: verified on the shapes of both runs
        assert all(k.constraints == {"M": AxisRange(1, 96), "N": AxisRange(128, 4096, 64)} for k in m.kernels)
        assert len(result.dropped) == 2 and all("shapes were added" in d for d in result.dropped)
    # a copy of run A's kernel, faster and verified on the same shapes, leaves the original dominated
    found = run_kernels(runs[0])
    faster = [
        Found(
            replace(f.kernel, id=f.kernel.id + "-fast", priority=2.0, measured=True),
            f.source,
            f.packet,
            f.task,
        )
        for f in found
    ]
    dropped: list[str] = []
    kept = merge(found + faster, dropped)
    assert {f.kernel.id for f in kept} == {f.kernel.id for f in faster}
    assert len(dropped) == 2 and all("dominated" in d for d in dropped)
    shown = ksearch("registry", "show", tmp_path / "out", "--op", "mm")
    assert_clean_error(shown, "has no operator 'mm'")
    listed = ksearch("registry", "list", tmp_path / "out")
    assert listed.returncode == 0 and all(k.id in listed.stdout for k in result.kept)
