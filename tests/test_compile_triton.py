"""Triton backend: launch capture on the CPU, AOT compile per target, resources, located diagnostics.

Every assertion reads real compiler output (Triton's PTX/AMDGCN, ptxas' log, cuobjdump's SASS);
nothing is canned. Each AOT compile takes well under a few seconds, and a module-level cache
compiles each (candidate, target) pair once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from ksearch.compile.capture import candidate_module, capture_specializations, recording_launches
from ksearch.compile.result import CompileResult
from ksearch.compile.triton_backend import compile_triton, compile_triton_local, triton_toolchain
from ksearch.errors import ConfigError, TaskError
from ksearch.evidence import FailureClass
from ksearch.target import load_target
from ksearch.task import load_task

CANDIDATES = Path(__file__).parent / "candidates" / "triton"
TINY = ("tiny_m64_n64_k64",)
# Tensor-core instruction families, by where they show: PTX, SASS, AMDGCN.
MMA_PTX = re.compile(r"\b(tcgen05\.mma|wgmma\.mma_async|mma\.sync)\b")
MMA_SASS = re.compile(r"\b(UTCHMMA|UTCQMMA|HGMMA|HMMA)\b")
MFMA = re.compile(r"\bv_mfma_\w+")

Build = Callable[..., CompileResult]


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """compile_triton on a fixture candidate, memoized per (candidate, target, task, dtype, workloads)."""
    done: dict[tuple[object, ...], CompileResult] = {}

    def _build(
        candidate: str,
        target: str,
        task: str = "matmul",
        dtype: str = "bfloat16",
        workloads: tuple[str, ...] | None = TINY,
    ) -> CompileResult:
        key = (candidate, target, task, dtype, workloads)
        if key not in done:
            path = CANDIDATES / f"{candidate}.py"
            outdir = tmp_path_factory.mktemp(f"{candidate}-{target}")
            done[key] = compile_triton(
                path.read_text(),
                path,
                load_task(task),
                load_target(target),
                outdir,
                dtype,
                workloads=list(workloads) if workloads is not None else None,
            )
        return done[key]

    return _build


def text_of(result: CompileResult, kind: str) -> str:
    paths = result.artifact_paths(kind)
    assert paths, f"no {kind} artifact in {result.artifacts} / {[k.artifacts for k in result.kernels]}"
    return "\n".join(p.read_text() for p in paths)


def line_of(path: Path, marker: str) -> int:
    """1-based line of the first line containing `marker`: where an error was planted."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in {path}")


def write_candidate(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    return path


def compile_file(path: Path, target: str, outdir: Path, task: str = "matmul") -> CompileResult:
    return compile_triton(
        path.read_text(),
        path,
        load_task(task),
        load_target(target),
        outdir,
        "bfloat16",
        workloads=list(TINY) if task == "matmul" else None,
    )


# ---- tensor-core paths per target --------------------------------------------------------------


def test_bf16_matmul_on_b200_uses_tcgen05(build: Build) -> None:
    result = build("matmul_dot", "b200")
    assert result.ok, result.diagnostics
    assert (result.language, result.target, result.arch) == ("triton", "b200", "sm_100a")
    (kernel,) = result.kernels
    assert set(kernel.artifacts) >= {"ttir", "ttgir", "llir", "ptx", "cubin", "sass"}
    ptx, sass = text_of(result, "ptx"), text_of(result, "sass")
    assert re.search(r"tcgen05\.mma\S*kind::f16", ptx)
    assert "tcgen05.ld" in ptx  # the accumulator lives in tensor memory
    assert "UTCHMMA" in sass  # tcgen05.mma as the SM executes it
    assert ".target sm_100a" in ptx
    assert kernel.specialization["signature"]["a_ptr"] == "*bf16"


def test_bf16_matmul_on_h100_uses_wgmma(build: Build) -> None:
    result = build("matmul_dot", "h100")
    assert result.ok, result.diagnostics
    assert result.arch == "sm_90a"
    ptx, sass = text_of(result, "ptx"), text_of(result, "sass")
    assert re.search(r"wgmma\.mma_async\S*\.bf16\.bf16", ptx)
    assert "tcgen05" not in ptx
    assert "HGMMA" in sass


def test_bf16_matmul_on_mi355x_uses_bf16_mfma(build: Build) -> None:
    result = build("matmul_dot", "mi355x")
    assert result.ok, result.diagnostics
    assert result.arch == "gfx950"
    (kernel,) = result.kernels
    assert set(kernel.artifacts) >= {"ttir", "ttgir", "llir", "amdgcn", "hsaco"}
    assert "ptx" not in kernel.artifacts and "sass" not in kernel.artifacts
    assert re.search(r"\bv_mfma_f32_\w+_bf16\b", text_of(result, "amdgcn"))
    assert Path(kernel.artifacts["hsaco"]).read_bytes()[:4] == b"\x7fELF"


@pytest.mark.parametrize("target", ["b200", "h100", "mi355x"])
def test_naive_matmul_has_no_tensor_core_instruction(build: Build, target: str) -> None:
    result = build("matmul_naive", target)
    assert result.ok, result.diagnostics
    if load_target(target).vendor == "nvidia":
        assert not MMA_PTX.search(text_of(result, "ptx"))
        assert not MMA_SASS.search(text_of(result, "sass"))
        # the products are plain FMAs
        assert re.search(r"\bfma\.rn\.f32\b", text_of(result, "ptx"))
    else:
        amdgcn = text_of(result, "amdgcn")
        assert not MFMA.search(amdgcn)
        assert re.search(r"\bv_(pk_)?(fma|fmac|mul)_f32", amdgcn)


def test_fp16_variant_types_the_pointers_fp16(build: Build) -> None:
    result = build("matmul_dot", "b200", dtype="float16")
    assert result.ok, result.diagnostics
    (kernel,) = result.kernels
    assert {kernel.specialization["signature"][p] for p in ("a_ptr", "b_ptr", "c_ptr")} == {"*fp16"}
    assert re.search(r"tcgen05\.mma\S*kind::f16", text_of(result, "ptx"))
    assert ".f16" in text_of(result, "ptx")


# ---- autotune, spills, metadata ----------------------------------------------------------------


def test_autotune_yields_one_kernel_per_config(build: Build) -> None:
    result = build("matmul_autotune", "h100")
    assert result.ok, result.diagnostics
    assert len(result.kernels) == 3
    got = sorted(
        (
            k.specialization["autotune_config"]["BLOCK_M"],
            k.specialization["autotune_config"]["BLOCK_N"],
            k.specialization["autotune_config"]["BLOCK_K"],
            k.num_warps,
            k.num_stages,
        )
        for k in result.kernels
    )
    assert got == sorted([(128, 128, 64, 4, 3), (128, 64, 64, 4, 4), (64, 128, 32, 8, 2)])
    for kernel in result.kernels:
        # the config's meta-parameters are the kernel's constexprs
        config = kernel.specialization["autotune_config"]
        assert all(
            kernel.specialization["constexprs"][k] == config[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K")
        )
        assert re.search(r"wgmma\.mma_async", Path(kernel.artifacts["ptx"]).read_text())
        assert kernel.threads_per_block == kernel.num_warps * 32
    assert len({k.specialization["hash"] for k in result.kernels}) == 3
    assert len({k.artifacts["cubin"] for k in result.kernels}) == 3


@pytest.mark.parametrize("target", ["b200", "h100"])
def test_spill_candidate_reports_the_spill_ptxas_saw(build: Build, target: str) -> None:
    result = build("spill", target)
    assert result.ok, result.diagnostics
    (kernel,) = result.kernels
    assert kernel.registers == 255  # at the per-thread limit
    assert kernel.spill_stores is not None and kernel.spill_stores > 0
    assert kernel.spill_loads is not None and kernel.spill_loads > 0
    assert kernel.local_bytes is not None and kernel.local_bytes > 0
    # the numbers are ptxas' own, as its log in the compile log says
    log = Path(result.artifacts["compile_log"]).read_text()
    assert f"{kernel.spill_stores} bytes spill stores, {kernel.spill_loads} bytes spill loads" in log
    # and the spill is real machine code: local-memory stores and loads in the SASS
    sass = Path(kernel.artifacts["sass"]).read_text()
    assert re.search(r"\bSTL(\.\w+)*\b", sass) and re.search(r"\bLDL(\.\w+)*\b", sass)


def test_non_spilling_kernel_reports_zero_spills(build: Build) -> None:
    (kernel,) = build("matmul_dot", "h100").kernels
    assert kernel.spill_stores == 0 and kernel.spill_loads == 0
    assert "STL" not in Path(kernel.artifacts["sass"]).read_text()


@pytest.mark.parametrize("target", ["b200", "mi355x"])
def test_resource_metadata_is_filled_for_both_vendors(build: Build, target: str) -> None:
    result = build("rmsnorm_rows", target, task="rmsnorm", workloads=("llama3_8b_decode_m1",))
    assert result.ok, result.diagnostics
    (kernel,) = result.kernels
    profile = load_target(target)
    assert kernel.name == "rmsnorm_row_kernel"
    assert kernel.num_warps == 8  # BLOCK_N = 4096 > 2048 in the candidate
    assert kernel.threads_per_block == 8 * profile.warp_size
    assert kernel.num_stages is not None
    assert kernel.registers is not None and 0 < kernel.registers <= profile.registers.max_per_thread
    assert kernel.smem_bytes is not None and kernel.smem_bytes > 0  # the cross-warp reduction's scratch
    assert kernel.spill_stores == 0
    if profile.vendor == "amd":
        assert kernel.sgprs is not None and kernel.sgprs > 0
        assert kernel.agprs is not None
        amdgcn = Path(kernel.artifacts["amdgcn"]).read_text()
        assert re.search(rf"\.vgpr_count:\s+{kernel.registers + kernel.agprs}\b", amdgcn) or re.search(
            rf"NumVgprs:\s+{kernel.registers}\b", amdgcn
        )
    else:
        assert f"Used {kernel.registers} registers" in Path(result.artifacts["compile_log"]).read_text()


def test_matmul_smem_matches_the_tile_pipeline(build: Build) -> None:
    # 3 stages of a 128x64 and a 64x128 bf16 tile: 3 * (128*64 + 64*128) * 2 bytes at least
    for target in ("b200", "h100", "mi355x"):
        (kernel,) = build("matmul_dot", target).kernels
        assert kernel.smem_bytes is not None and kernel.smem_bytes >= 2 * (128 * 64 + 64 * 128) * 2, target
        assert kernel.registers is not None and kernel.registers > 32


# ---- launch capture ------------------------------------------------------------------------------


def _backend(target: str) -> Any:
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend

    profile = load_target(target)
    return make_backend(GPUTarget(profile.triton.backend, profile.triton.arch, profile.warp_size))


def test_capture_records_without_executing() -> None:
    path = CANDIDATES / "matmul_dot.py"
    a = torch.full((96, 72), 1.0, dtype=torch.bfloat16)
    b = torch.full((72, 80), 1.0, dtype=torch.bfloat16)
    c = torch.full((96, 80), float("nan"), dtype=torch.bfloat16)
    with candidate_module(path.read_text(), path) as module, recording_launches(_backend("b200")) as recorder:
        module.run(a, b, c)
    assert torch.isnan(c).all(), "capture must not run the kernel"
    assert recorder.launches == 1
    (spec,) = recorder.specializations
    described = spec.describe()
    assert described["signature"]["a_ptr"] == "*bf16" and described["signature"]["M"] == "i32"
    # unit strides become constexpr 1, as Triton's JIT specializes them
    assert described["constexprs"]["stride_ak"] == 1 and described["signature"]["stride_ak"] == "constexpr"
    # divisibility by 16: M=96 and N=80 are multiples of 16, K=72 is not
    assert described["attrs"]["M"] == {"tt.divisibility": 16}
    assert described["attrs"]["N"] == {"tt.divisibility": 16}
    assert "K" not in described["attrs"]
    assert described["attrs"]["a_ptr"] == {"tt.divisibility": 16}
    assert described["options"]["num_warps"] == 4 and described["options"]["num_stages"] == 3


def test_capture_uses_the_targets_specialization_rules() -> None:
    # AMD marks tensors under 2 GiB as buffer-op candidates (tt.pointer_range 32); NVIDIA does not.
    path = CANDIDATES / "matmul_dot.py"
    task = load_task("matmul")
    specs = {}
    for target in ("mi355x", "b200"):
        with candidate_module(path.read_text(), path) as module:
            recorder = capture_specializations(module.run, task, _backend(target), "bfloat16", list(TINY))
        specs[target] = recorder.specializations[0].describe()["attrs"]["a_ptr"]
    assert specs["mi355x"] == {"tt.divisibility": 16, "tt.pointer_range": 32}
    assert specs["b200"] == {"tt.divisibility": 16}


def test_capture_deduplicates_across_workloads() -> None:
    path = CANDIDATES / "matmul_dot.py"
    task = load_task("matmul")
    names = [w.name for w in task.workloads()]
    with candidate_module(path.read_text(), path) as module:
        recorder = capture_specializations(module.run, task, _backend("h100"), "bfloat16", names)
    assert recorder.launches == len(names)

    # What Triton's JIT keys an int on: 1, a multiple of 16, or neither; M, N, K decide every int arg.
    def klass(v: int) -> str:
        return "one" if v == 1 else "div16" if v % 16 == 0 else "other"

    expected = {tuple(klass(task.axes_for(n)[a]) for a in "MNK") for n in names}
    assert len(recorder.specializations) == len(expected) < len(names)
    seen = [w for spec in recorder.specializations for w in spec.workloads]
    assert sorted(seen) == sorted(names)
    for spec in recorder.specializations:
        assert set(spec.grids) == set(spec.workloads)
        for workload in spec.workloads:
            axes = task.axes_for(workload)
            assert spec.grids[workload] == [-(-axes["M"] // 128), -(-axes["N"] // 128), 1]


def test_capture_expands_autotune_and_applies_heuristics(tmp_path: Path) -> None:
    path = write_candidate(
        tmp_path,
        "tuned_heuristic",
        """
import triton
import triton.language as tl


@triton.autotune(configs=[triton.Config({"BLOCK": 64}, num_warps=2), triton.Config({"BLOCK": 256}, num_warps=8)],
                 key=["n"])
@triton.heuristics({"EVEN": lambda args: args["n"] % args["BLOCK"] == 0})
@triton.jit
def fill_kernel(out_ptr, n, BLOCK: tl.constexpr, EVEN: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if EVEN:
        tl.store(out_ptr + offs, 1.0)
    else:
        tl.store(out_ptr + offs, 1.0, mask=offs < n)


def run(a, b, c):
    fill_kernel[lambda meta: (triton.cdiv(c.numel(), meta["BLOCK"]),)](c, c.numel())
""",
    )
    task = load_task("matmul")
    with candidate_module(path.read_text(), path) as module:
        recorder = capture_specializations(
            module.run, task, _backend("b200"), "bfloat16", ["ragged_m96_n80_k72"]
        )
    described = sorted(
        (s.describe() for s in recorder.specializations), key=lambda d: d["constexprs"]["BLOCK"]
    )
    # n = 96 * 80 = 7680: divisible by 64 and 256
    assert [
        (d["constexprs"]["BLOCK"], d["constexprs"]["EVEN"], d["options"]["num_warps"]) for d in described
    ] == [(64, True, 2), (256, True, 8)]
    assert [d["grids"]["ragged_m96_n80_k72"] for d in described] == [[120, 1, 1], [30, 1, 1]]


def test_capture_applies_early_config_prune(tmp_path: Path) -> None:
    path = write_candidate(
        tmp_path,
        "pruned",
        """
import triton
import triton.language as tl


def keep_small(configs, named_args, **kwargs):
    return [c for c in configs if c.kwargs["BLOCK"] <= named_args["n"]]


@triton.autotune(configs=[triton.Config({"BLOCK": b}) for b in (64, 128, 8192)], key=["n"],
                 prune_configs_by={"early_config_prune": keep_small})
@triton.jit
def fill_kernel(out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, 1.0, mask=offs < n)


def run(a, b, c):
    fill_kernel[lambda meta: (triton.cdiv(c.numel(), meta["BLOCK"]),)](c, c.numel())
""",
    )
    with candidate_module(path.read_text(), path) as module:
        recorder = capture_specializations(
            module.run, load_task("matmul"), _backend("h100"), "bfloat16", list(TINY)
        )
    # n = 64 * 64 = 4096: the 8192 config is pruned by the candidate's own filter
    assert sorted(s.describe()["constexprs"]["BLOCK"] for s in recorder.specializations) == [64, 128]


# ---- diagnostics ---------------------------------------------------------------------------------


def test_syntax_error_is_an_import_error_on_the_planted_line(tmp_path: Path) -> None:
    path = CANDIDATES / "syntax_error.py"
    result = compile_file(path, "b200", tmp_path)
    assert not result.ok and result.failure_class is FailureClass.IMPORT_ERROR
    (diag,) = result.diagnostics
    assert diag.file == str(path)
    assert diag.line == line_of(path, "def run(") == 14
    assert diag.column is not None and "SyntaxError" in diag.message
    assert "Traceback" not in diag.message and result.kernels == []


def test_jit_type_error_is_located_in_the_candidate(tmp_path: Path) -> None:
    path = CANDIDATES / "jit_type_error.py"
    result = compile_file(path, "h100", tmp_path)
    assert not result.ok and result.failure_class is FailureClass.COMPILE_ERROR
    diag = result.diagnostics[0]
    assert diag.file == str(path)
    assert diag.line == line_of(path, "c = tl.dot(a, b)") == 17
    assert diag.column == 9  # the call `tl.dot(...)`, 1-based
    assert "rank" in diag.message  # Triton's reason: dot needs 2-D operands
    assert "Traceback" not in diag.message and "\n" not in diag.message


def test_error_in_a_called_jit_function_points_at_it_and_at_the_call(tmp_path: Path) -> None:
    path = write_candidate(
        tmp_path,
        "nested_error",
        """
import triton
import triton.language as tl


@triton.jit
def add_pointers(p, q):
    return p + q  # planted: pointer + pointer


@triton.jit
def kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    z = add_pointers(x_ptr, y_ptr)  # call site
    tl.store(z + offs, 1.0, mask=offs < n)


def run(a, b, c):
    kernel[(1,)](a, b, c.numel(), BLOCK=64)
""",
    )
    result = compile_file(path, "b200", tmp_path / "out")
    assert result.failure_class is FailureClass.COMPILE_ERROR
    error, note = result.diagnostics
    assert (error.line, error.severity) == (line_of(path, "planted: pointer"), "error")
    assert "pointer" in error.message
    assert (note.line, note.severity) == (line_of(path, "# call site"), "note")


def test_exception_in_run_is_located_at_the_raising_line(tmp_path: Path) -> None:
    path = write_candidate(
        tmp_path,
        "run_raises",
        """
import triton
import triton.language as tl


@triton.jit
def kernel(x_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.store(x_ptr + offs, 1.0, mask=offs < n)


def block_size(t):
    return t.shape[7]  # planted: no such dim


def run(a, b, c):
    kernel[(1,)](c, c.numel(), BLOCK=block_size(a))
""",
    )
    result = compile_file(path, "h100", tmp_path / "out")
    assert result.failure_class is FailureClass.COMPILE_ERROR
    (diag,) = result.diagnostics
    assert diag.line == line_of(path, "planted: no such dim")
    assert diag.message.startswith("IndexError") and "tiny_m64_n64_k64" in diag.message


def test_wrong_kernel_arguments_name_the_kernel(tmp_path: Path) -> None:
    path = write_candidate(
        tmp_path,
        "bad_args",
        """
import triton
import triton.language as tl


@triton.jit
def store_kernel(x_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.store(x_ptr + offs, 1.0, mask=offs < n)


def run(a, b, c):
    store_kernel[(1,)](c, BLOCK=64)  # planted: n is missing
""",
    )
    result = compile_file(path, "h100", tmp_path / "out")
    assert result.failure_class is FailureClass.COMPILE_ERROR
    (diag,) = result.diagnostics
    assert diag.line == line_of(path, "planted: n is missing")
    assert "store_kernel[grid]()" in diag.message and "'n'" in diag.message


def test_ptxas_error_maps_back_to_the_source_line(tmp_path: Path) -> None:
    path = write_candidate(
        tmp_path,
        "bad_asm",
        """
import triton
import triton.language as tl


@triton.jit
def asm_kernel(x_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n)
    y = tl.inline_asm_elementwise("bogus.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1)
    tl.store(x_ptr + offs, y, mask=offs < n)


def run(a, b, c):
    asm_kernel[(1,)](c, c.numel(), BLOCK=64)
""",
    )
    result = compile_file(path, "h100", tmp_path / "out")
    assert result.failure_class is FailureClass.COMPILE_ERROR
    assert result.diagnostics
    for diag in result.diagnostics:
        assert diag.line == line_of(path, "bogus.f32")
        assert diag.message.startswith("ptxas: ")
    assert any("bogus" in d.message for d in result.diagnostics)


def test_missing_entry_and_no_launch_are_reported(tmp_path: Path) -> None:
    no_entry = write_candidate(tmp_path, "no_entry", "def launch(a, b, c):\n    pass\n")
    result = compile_file(no_entry, "b200", tmp_path / "a")
    assert result.failure_class is FailureClass.ENTRY_SIGNATURE
    assert "run" in result.diagnostics[0].message

    wrong_arity = write_candidate(tmp_path, "wrong_arity", "def run(a, b):\n    pass\n")
    result = compile_file(wrong_arity, "b200", tmp_path / "b")
    assert result.failure_class is FailureClass.ENTRY_SIGNATURE
    assert result.diagnostics[0].line == 1

    torch_only = write_candidate(tmp_path, "torch_only", "def run(a, b, c):\n    c.copy_(a @ b)\n")
    result = compile_file(torch_only, "b200", tmp_path / "c")
    assert result.failure_class is FailureClass.COMPILE_ERROR
    assert "no @triton.jit kernel" in result.diagnostics[0].message


def test_failed_compile_still_writes_the_log_and_source(tmp_path: Path) -> None:
    result = compile_file(CANDIDATES / "jit_type_error.py", "mi355x", tmp_path)
    assert not result.ok
    assert Path(result.artifacts["source"]).read_text() == (CANDIDATES / "jit_type_error.py").read_text()
    assert "bad_dot_kernel" in Path(result.artifacts["compile_log"]).read_text()


def test_bad_arguments_are_config_errors(tmp_path: Path) -> None:
    path = CANDIDATES / "matmul_dot.py"
    with pytest.raises(TaskError):
        compile_triton(path.read_text(), path, load_task("matmul"), load_target("b200"), tmp_path, "float64")
    with pytest.raises(TaskError):
        compile_triton(
            path.read_text(),
            path,
            load_task("matmul"),
            load_target("b200"),
            tmp_path,
            None,
            workloads=["no_such_workload"],
        )


# ---- toolchain, local JIT ------------------------------------------------------------------------


def test_toolchain_names_the_tools(build: Build) -> None:
    versions = triton_toolchain()
    import triton

    assert versions["triton"] == triton.__version__
    for tool in ("ptxas", "ptxas_blackwell", "cuobjdump", "nvdisasm", "triton_build"):
        assert versions[tool], tool
    nvidia = build("matmul_naive", "b200").toolchain
    assert nvidia["ptxas"] == versions["ptxas_blackwell"] and nvidia["ptxas_binary"] == "ptxas-blackwell"
    assert "amd_codegen" in build("matmul_naive", "mi355x").toolchain


def test_local_compile_without_a_gpu_is_a_config_error(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    path = CANDIDATES / "matmul_dot.py"
    with pytest.raises(ConfigError, match="no local CUDA or ROCm GPU"):
        compile_triton_local(path.read_text(), path, load_task("matmul"), tmp_path)


@pytest.mark.gpu
def test_local_compile_loads_on_the_device(tmp_path: Path) -> None:
    path = CANDIDATES / "matmul_dot.py"
    result = compile_triton_local(
        path.read_text(), path, load_task("matmul"), tmp_path, "bfloat16", workloads=list(TINY)
    )
    assert result.ok, result.diagnostics
    (kernel,) = result.kernels
    device = kernel.specialization["device"]
    assert device["registers"] > 0 and device["max_threads"] >= kernel.threads_per_block
    if "cubin" in kernel.artifacts:
        # the driver reads the register count ptxas wrote into the cubin
        assert device["registers"] == kernel.registers
        assert device["n_spills"] * 4 == kernel.local_bytes  # the driver's local size, in words
    assert kernel.artifacts.keys() & {"ptx", "amdgcn"}
