"""TileLang backend: lower tests/candidates/tilelang/gemm.py without a GPU for sm_100a and gfx950, then build.

Everything that needs tilelang skips with the pip line when it is not installed; the nvcc build
skips with its own reason when nvcc is missing.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from ksearch.compile import tilelang_backend
from ksearch.compile.tilelang_backend import (
    compile_tilelang,
    lower_target_spec,
    parse_nvcc_diagnostics,
    parse_ptxas_report,
    tilelang_available,
)
from ksearch.compile.toolchain import find_cuda_tools, find_hip_tools
from ksearch.evidence import FailureClass
from ksearch.target import load_target
from ksearch.task import load_task

GEMM = Path(__file__).parent / "candidates" / "tilelang" / "gemm.py"
REASON = tilelang_available()
needs_tilelang = pytest.mark.skipif(REASON is not None, reason=REASON or "")
CUDA = find_cuda_tools()
needs_nvcc = pytest.mark.skipif(
    CUDA.nvcc is None, reason="; ".join(m.message for m in CUDA.missing) or "no nvcc"
)
TENSOR_CORE_SASS = re.compile(r"\b(UTC\w*MMA|HGMMA|HMMA)\b[.\w]*")

pytestmark = pytest.mark.slow  # each lowering imports tilelang in a subprocess: seconds


@pytest.fixture(scope="module")
def matmul():
    return load_task("matmul")


@pytest.fixture(scope="module")
def sm100(matmul, tmp_path_factory):
    if REASON is not None:
        pytest.skip(REASON)
    out = tmp_path_factory.mktemp("sm100")
    return compile_tilelang(GEMM.read_text(), GEMM, matmul, load_target("b200"), out, dtype="bfloat16")


@needs_tilelang
def test_gemm_lowers_for_sm100a(sm100):
    r = sm100
    assert r.ok, (r.message, r.diagnostics)
    assert r.language == "tilelang" and r.arch == "sm_100a" and r.toolchain["tilelang"]
    src = Path(r.artifacts["cuda_src"]).read_text()
    assert re.search(r'extern "C" __global__ void (__launch_bounds__\([^)]*\) )?gemm_kernel\(', src)
    assert "bfloat16_t" in src
    [k] = r.kernels
    assert k.name == "gemm_kernel"
    assert k.specialization["workload"] and k.specialization["axes"]["K"] > 0
    assert k.specialization["dtype"] == "bfloat16"
    assert k.threads_per_block and k.threads_per_block % 32 == 0 and k.num_warps == k.threads_per_block // 32
    assert k.specialization["dyn_shared_bytes"] > 0  # the pipelined A/B tiles live in dynamic shared memory


@needs_tilelang
@needs_nvcc
def test_sm100a_cubin_uses_tensor_cores(sm100):
    r = sm100
    assert "cubin" in r.artifacts and "sass" in r.artifacts, r.message
    assert Path(r.artifacts["cubin"]).read_bytes()[:4] == b"\x7fELF"
    sass = Path(r.artifacts["sass"]).read_text()
    families = {m.group(1) for m in TENSOR_CORE_SASS.finditer(sass)}
    assert families, "no tensor-core instruction in the SASS"
    # TileLang 0.1.15's T.gemm on sm_100a lowers to warp-level mma.sync (HMMA) fed by TMA loads,
    # not tcgen05 (UTCHMMA): record that so a TileLang upgrade that changes it is noticed.
    assert "HMMA" in families
    assert "UTMALDG" in sass
    [k] = r.kernels
    assert isinstance(k.registers, int) and k.registers > 0
    assert k.spill_stores == 0 and k.local_bytes == 0
    assert k.smem_bytes >= k.specialization["dyn_shared_bytes"]


@needs_tilelang
def test_gemm_lowers_for_gfx950(matmul, tmp_path):
    r = compile_tilelang(GEMM.read_text(), GEMM, matmul, load_target("mi355x"), tmp_path, dtype="bfloat16")
    assert r.ok, (r.message, r.diagnostics)
    src = Path(r.artifacts["hip_src"]).read_text()
    assert re.search(r'extern "C" __global__ void (__launch_bounds__\([^)]*\) )?gemm_kernel\(', src)
    assert "__builtin_amdgcn_mfma_f32_" in src
    [k] = r.kernels
    assert k.name == "gemm_kernel" and k.threads_per_block
    if "amdgcn" in r.artifacts:  # a ROCm >= 6 install: the generated HIP builds
        assert re.search(r"^\s*v_mfma_f32_\w+bf16", Path(r.artifacts["amdgcn"]).read_text(), re.MULTILINE)
        assert isinstance(k.registers, int)
    elif find_hip_tools().mode is None:  # no clang-22 or HIP headers: source lowered, build skipped with why
        assert "device build skipped" in r.message, r.message
    else:  # headers from libamdhip64-dev (ROCm 5.2) lack hip_bf16.h / rocWMMA: lowered source kept, build skipped
        assert "device build skipped" in r.message
        missing = [d for d in r.diagnostics if "file not found" in d.message]
        assert missing and missing[0].severity == "warning" and missing[0].file and missing[0].line


@needs_tilelang
def test_fixed_shape_kernel_and_errors_are_classified(matmul, tmp_path):
    b200 = load_target("b200")

    def compile_src(name: str, text: str, **kw):
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        return compile_tilelang(text, path, matmul, b200, tmp_path / name, **kw), path

    r, path = compile_src(
        "syntax", "import tilelang.language as T\n\ndef make_kernel(M, N, K, dtype):\n    return (\n"
    )
    assert r.failure_class is FailureClass.IMPORT_ERROR
    assert r.diagnostics[0].file == str(path) and r.diagnostics[0].line in (4, 5)

    r, path = compile_src("noentry", "import tilelang.language as T\nX = 1\n")
    assert r.failure_class is FailureClass.ENTRY_SIGNATURE and "make_kernel" in r.message

    r, path = compile_src("wrongargs", "def make_kernel(M, N, K, dtype, Q):\n    pass\n")
    assert r.failure_class is FailureClass.ENTRY_SIGNATURE and "Q" in r.message

    bad = (
        "import tilelang.language as T\n"
        "def make_kernel(M, N, K, dtype):\n"
        "    raise ValueError('tile size does not divide K')\n"
    )
    r, path = compile_src("raises", bad)
    assert r.failure_class is FailureClass.COMPILE_ERROR
    assert r.diagnostics[0].file == str(path) and r.diagnostics[0].line == 3
    assert "tile size does not divide K" in r.diagnostics[0].message

    fixed = GEMM.read_text() + "\nkernel = make_kernel(256, 256, 256, 'float16')\ndel make_kernel\n"
    r, path = compile_src("fixed", fixed)
    assert r.ok, r.message
    assert r.kernels[0].specialization["thread_extent"]["blockIdx.x"] == 2  # 256 / 128, not the workload's N


@needs_tilelang
def test_lowering_timeout_is_compile_timeout(matmul, tmp_path):
    # Importing tilelang alone takes over a second, so a 0.5 s limit always cuts the worker off.
    r = compile_tilelang(GEMM.read_text(), GEMM, matmul, load_target("b200"), tmp_path, timeout_s=0.5)
    assert not r.ok and r.failure_class is FailureClass.COMPILE_TIMEOUT
    assert "TIMED OUT" in Path(r.artifacts["compile_log"]).read_text()


def test_missing_tilelang_is_a_skip(matmul, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tilelang" else real(name, *a)
    )
    assert "pip install tilelang" in tilelang_backend.tilelang_available()
    r = compile_tilelang(GEMM.read_text(), GEMM, matmul, load_target("b200"), tmp_path)
    assert not r.ok and r.failure_class is FailureClass.SKIPPED_TOOLCHAIN_MISSING
    assert "pip install tilelang" in r.message


def test_target_specs():
    assert lower_target_spec(load_target("b200")) == {"kind": "cuda", "arch": "sm_100a"}
    assert lower_target_spec(load_target("h100")) == {"kind": "cuda", "arch": "sm_90a"}
    assert lower_target_spec(load_target("mi355x")) == {"kind": "hip", "mcpu": "gfx950"}
    assert lower_target_spec(load_target("mi300x")) == {"kind": "hip", "mcpu": "gfx942"}


def test_parse_nvcc_and_ptxas_output():
    diags = parse_nvcc_diagnostics(
        '/o/g.cu(12): error: identifier "foo" is undefined\n/o/g.cu(3): warning #177-D: variable unused\n',
        {"/o/g.cu": "g.cu"},
    )
    assert [(d.file, d.line, d.severity) for d in diags] == [("g.cu", 12, "error"), ("g.cu", 3, "warning")]
    report = (
        "ptxas info    : Compiling entry function 'gemm_kernel' for 'sm_100a'\n"
        "ptxas info    : Function properties for gemm_kernel\n"
        "    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
        "ptxas info    : Used 240 registers, used 1 barriers, 1024 bytes smem\n"
    )
    assert parse_ptxas_report(report) == {
        "gemm_kernel": {
            "registers": 240,
            "smem_bytes": 1024,
            "local_bytes": 16,
            "spill_stores": 8,
            "spill_loads": 4,
        }
    }
