"""HIP backend: real clang-22 / hipcc compiles of the fixtures in tests/candidates/hip for gfx950 and gfx942.

Tests that need the compiler skip with the install line when it is missing; the launch-description,
diagnostics-parsing and toolchain-missing tests run everywhere.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from ksearch.compile import hip_backend
from ksearch.compile.hip_backend import compile_hip, hip_toolchain, parse_clang_diagnostics
from ksearch.compile.hip_launch import parse_launch, resolve_launch
from ksearch.compile.toolchain import HipTools, ToolMissing, find_hip_tools, run_tool
from ksearch.errors import TargetError
from ksearch.evidence import FailureClass
from ksearch.target import load_target
from ksearch.task import load_task

HIP_DIR = Path(__file__).parent / "candidates" / "hip"
TOOLS = find_hip_tools()
SKIP_REASON = "; ".join(m.message for m in TOOLS.missing) or "HIP toolchain not usable"
needs_hip = pytest.mark.skipif(
    TOOLS.mode is None,
    reason=f"clang-22 not installed: apt-get install clang-22 lld-22 libamdhip64-dev ({SKIP_REASON})",
)
MI355X = load_target("mi355x")  # gfx950
MI300X = load_target("mi300x")  # gfx942


def _compile(name: str, target=MI355X, tmp_path: Path | None = None, **kw):
    path = HIP_DIR / name
    return compile_hip(path.read_text(), path, target, tmp_path / target.name, **kw)


def _asm(result) -> str:
    return Path(result.artifacts["amdgcn"]).read_text()


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# ---- real compiles ----------------------------------------------------------------------------


@needs_hip
def test_bf16_mfma_gemm_compiles_for_gfx950_with_mfma_and_lds(tmp_path):
    r = _compile("mfma_bf16_gemm.hip", tmp_path=tmp_path, task=load_task("matmul"))
    assert r.ok, r.message
    assert r.failure_class is None and r.language == "hip" and r.arch == "gfx950"
    asm = _asm(r)
    assert re.search(r"^\s*v_mfma_f32_32x32x16_bf16\s", asm, re.MULTILINE), (
        "no 32x32x16 bf16 MFMA in the assembly"
    )
    assert '.amdgcn_target "amdgcn-amd-amdhsa--gfx950"' in asm
    [k] = r.kernels
    assert k.name == "gemm_bf16_mfma_64x64x32"
    for value in (k.registers, k.agprs, k.sgprs, k.smem_bytes, k.local_bytes, k.spill_stores, k.sgpr_spills):
        assert isinstance(value, int)
    assert 0 < k.registers <= 512 and k.sgprs > 0
    assert k.smem_bytes == 2 * 64 * 40 * 2  # two [64][40] bf16 tiles in __shared__
    assert k.local_bytes == 0 and k.spill_stores == 0
    assert k.threads_per_block == 256 and k.num_warps == 4
    assert k.specialization["max_flat_workgroup_size"] == 256
    assert k.specialization["launch"]["grid"] == ["ceil(N / 64)", "ceil(M / 64)"]
    assert [p["kind"] for p in k.specialization["params"]] == ["global_buffer"] * 3 + ["by_value"] * 3
    assert r.toolchain["clang" if TOOLS.mode == "clang" else "hipcc"]
    assert Path(r.artifacts["compile_log"]).read_text().count("$ ") >= 1
    if TOOLS.lld is not None or TOOLS.mode == "hipcc":
        data = Path(r.artifacts["hsaco"]).read_bytes()
        assert data[:4] == b"\x7fELF" and int.from_bytes(data[18:20], "little") == 224  # EM_AMDGPU
        assert b"gemm_bf16_mfma_64x64x32" in data


@needs_hip
def test_mfma_scale_fp4_compiles_for_gfx950(tmp_path):
    r = _compile("mfma_scale_fp4.hip", tmp_path=tmp_path)
    assert r.ok, r.message
    asm = _asm(r)
    found = re.findall(r"^\s*(v_mfma_scale_f32_\w+)\s.*cbsz:4 blgp:4", asm, re.MULTILINE)
    assert found == ["v_mfma_scale_f32_32x32x64_f8f6f4"]
    [k] = r.kernels
    assert k.threads_per_block == 64 and k.num_warps == 1 and k.smem_bytes == 0


@needs_hip
@pytest.mark.parametrize("target", [MI355X, MI300X], ids=["gfx950", "gfx942"])
def test_elementwise_kernel_links_the_device_libraries(tmp_path, target):
    r = _compile("silu_and_mul.hip", target=target, tmp_path=tmp_path, task=load_task("silu_and_mul"))
    assert r.ok, r.message
    asm = _asm(r)
    assert f"amdgcn-amd-amdhsa--{target.arch}" in asm
    assert "v_exp_f32" in asm  # expf from ocml, inlined
    assert "s_swappc" not in asm  # threadIdx/blockDim helpers from ockl inlined, no calls left
    [k] = r.kernels
    assert k.smem_bytes == 0 and k.threads_per_block == 256 and k.registers < 64


@needs_hip
def test_register_spills_and_scratch_are_reported(tmp_path):
    r = _compile("register_spill.hip", tmp_path=tmp_path)
    assert r.ok, r.message
    [k] = r.kernels
    assert k.spill_stores > 0 and k.local_bytes > 0
    assert "scratch_store" in _asm(r) or "buffer_store" in _asm(r)


@needs_hip
def test_agprs_are_reported_apart_from_arch_vgprs(tmp_path):
    src = """
/* ksearch:launch
kernels:
  - {name: many, block: [256], grid: [1], args: [a, b, c, K]}
*/
#include <hip/hip_runtime.h>
typedef __bf16 bf16x8 __attribute__((ext_vector_type(8)));
typedef float f32x16 __attribute__((ext_vector_type(16)));
extern "C" __global__ void __launch_bounds__(256) many(const bf16x8* a, const bf16x8* b, float* c, int K) {
  f32x16 acc[20] = {};
  for (int k = 0; k < K; ++k)
#pragma unroll
    for (int j = 0; j < 20; ++j)
      acc[j] = __builtin_amdgcn_mfma_f32_32x32x16_bf16(a[k * 64 + threadIdx.x + j], b[k * 64 + threadIdx.x],
                                                       acc[j], 0, 0, 0);
#pragma unroll
  for (int j = 0; j < 20; ++j)
#pragma unroll
    for (int i = 0; i < 16; ++i) c[(j * 16 + i) * 256 + threadIdx.x] = acc[j][i];
}
"""
    r = compile_hip(src, tmp_path / "agpr.hip", MI355X, tmp_path / "out")
    assert r.ok, r.message
    [k] = r.kernels
    assert k.agprs > 0 and 0 < k.registers <= 256
    assert k.specialization["total_vgprs"] >= k.registers + k.agprs  # metadata's count is arch + acc


@needs_hip
def test_syntax_error_gives_a_located_diagnostic(tmp_path):
    path = HIP_DIR / "syntax_error.hip"
    r = _compile("syntax_error.hip", tmp_path=tmp_path)
    assert not r.ok and r.failure_class is FailureClass.COMPILE_ERROR
    errors = [d for d in r.diagnostics if d.severity == "error"]
    assert errors, r.diagnostics
    d = errors[0]
    assert d.file == str(path)
    assert d.line == _line_of(path, "missing semicolon") == 12
    assert isinstance(d.column, int) and d.column > 1
    assert "expected ';'" in d.message
    assert r.message.startswith(f"{path}:12:")
    assert "amdgcn" not in r.artifacts and "compile_log" in r.artifacts


@needs_hip
def test_gfx950_builtin_on_gfx942_is_a_located_error(tmp_path):
    path = HIP_DIR / "mfma_bf16_gemm.hip"
    r = _compile("mfma_bf16_gemm.hip", target=MI300X, tmp_path=tmp_path)
    assert not r.ok and r.failure_class is FailureClass.COMPILE_ERROR
    d = next(d for d in r.diagnostics if d.severity == "error")
    assert d.file == str(path) and d.line == _line_of(path, "acc = __builtin_amdgcn_mfma_f32_32x32x16_bf16")
    assert "gfx950-insts" in d.message


@needs_hip
def test_undefined_device_function_is_a_compile_error(tmp_path):
    src = """/* ksearch:launch
kernels: [{name: k, block: [64], grid: [1], args: [x]}]
*/
#include <hip/hip_runtime.h>
extern "C" __device__ float mystery(float);
extern "C" __global__ void k(float* x) { x[threadIdx.x] = mystery(x[threadIdx.x]); }
"""
    r = compile_hip(src, tmp_path / "undef.hip", MI355X, tmp_path / "out")
    assert not r.ok and r.failure_class is FailureClass.COMPILE_ERROR
    assert "mystery" in r.message


@needs_hip
def test_timeout_kills_a_real_compile(tmp_path):
    # A 100k-iteration fully unrolled loop takes clang tens of seconds at -O3; the limit is 1 s.
    src = """#include <hip/hip_runtime.h>
extern "C" __global__ void slow(float* x, int n) {
  float acc = x[threadIdx.x];
#pragma unroll
  for (int i = 0; i < 100000; ++i) acc = acc * x[(i * 7 + threadIdx.x) % n] + (float)(i ^ n);
  x[threadIdx.x] = acc;
}
"""
    outdir = tmp_path / "slow_out"
    t0 = time.monotonic()
    r = compile_hip(src, tmp_path / "slow.hip", MI355X, outdir, timeout_s=1.0, require_launch=False)
    elapsed = time.monotonic() - t0
    assert not r.ok and r.failure_class is FailureClass.COMPILE_TIMEOUT
    assert "1s" in r.message and "killed" in r.message
    assert elapsed < 10
    assert "TIMED OUT" in Path(r.artifacts["compile_log"]).read_text()
    assert not _processes_mentioning(str(outdir)), "the compiler outlived its timeout"


@needs_hip
def test_tiny_timeout_is_compile_timeout(tmp_path):
    r = _compile("silu_and_mul.hip", tmp_path=tmp_path, timeout_s=0.001)
    assert not r.ok and r.failure_class is FailureClass.COMPILE_TIMEOUT


@needs_hip
def test_compiles_are_deterministic(tmp_path):
    a = _compile("silu_and_mul.hip", tmp_path=tmp_path / "a")
    b = _compile("silu_and_mul.hip", tmp_path=tmp_path / "b")
    assert _asm(a) == _asm(b)


@needs_hip
def test_launch_description_is_checked_against_the_compiled_kernels(tmp_path):
    kernel = """#include <hip/hip_runtime.h>
extern "C" __global__ void __launch_bounds__(128) twice(const float* x, float* y, long n) {
  long i = blockIdx.x * 128L + threadIdx.x;
  if (i < n) y[i] = 2.0f * x[i];
}
"""

    def build(launch: str):
        src = f"/* ksearch:launch\n{launch}\n*/\n{kernel}"
        return compile_hip(src, tmp_path / "twice.hip", MI355X, tmp_path / "out"), src

    r, _ = build(
        "kernels:\n  - {name: twice, block: [128], grid: ['ceil(M*I/128)'], args: [x, out, 'M*I:i64']}"
    )
    assert r.ok, r.message

    r, _ = build("kernels:\n  - {name: thrice, block: [128], grid: [1], args: [x, out, 'M:i64']}")
    assert r.failure_class is FailureClass.COMPILE_ERROR and "thrice" in r.message and "twice" in r.message
    assert r.diagnostics[-1].line == 3

    r, _ = build("kernels:\n  - name: twice\n    block: [128]\n    grid: [1]\n    args: [x, out]")
    assert r.failure_class is FailureClass.COMPILE_ERROR and "takes 3 parameter(s)" in r.message
    assert r.diagnostics[-1].line == 6  # the args: line

    r, _ = build("kernels:\n  - name: twice\n    block: [256]\n    grid: [1]\n    args: [x, out, 'M:i64']")
    assert r.failure_class is FailureClass.COMPILE_ERROR and "at most 128" in r.message
    assert r.diagnostics[-1].line == 4  # the block: line

    r, _ = build("kernels:\n  - {name: twice, block: [128], grid: [1], args: [x, out, 'M:i32']}")
    assert r.failure_class is FailureClass.COMPILE_ERROR and "8-byte value" in r.message

    r, _ = build("kernels:\n  - {name: twice, block: [128], grid: [1], args: ['M*2', out, 'M:i64']}")
    assert r.failure_class is FailureClass.COMPILE_ERROR and "pointer" in r.message


# ---- no compiler needed -----------------------------------------------------------------------


def test_missing_toolchain_is_a_skip_with_the_install_line(tmp_path, monkeypatch):
    missing = HipTools(
        mode=None,
        missing=[
            ToolMissing(
                tool="clang-22",
                reason="HIP device code needs clang",
                install="apt-get install clang-22 lld-22 libamdhip64-dev",
            )
        ],
    )
    monkeypatch.setattr(hip_backend, "find_hip_tools", lambda: missing)
    r = _compile("mfma_bf16_gemm.hip", tmp_path=tmp_path)
    assert not r.ok and r.failure_class is FailureClass.SKIPPED_TOOLCHAIN_MISSING
    assert "clang-22 not installed" in r.message and "apt-get install clang-22" in r.message


def test_missing_launch_description_is_a_compile_error(tmp_path):
    src = '#include <hip/hip_runtime.h>\nextern "C" __global__ void k(float* x) {}\n'
    r = compile_hip(src, tmp_path / "k.hip", MI355X, tmp_path / "out")
    assert r.failure_class is FailureClass.COMPILE_ERROR
    assert r.diagnostics[0].line == 1 and "ksearch:launch" in r.diagnostics[0].message


def test_nvidia_target_is_a_caller_error(tmp_path):
    with pytest.raises(TargetError, match="AMD targets"):
        _compile("silu_and_mul.hip", target=load_target("b200"), tmp_path=tmp_path)


def test_launch_description_parses_and_resolves():
    source = (HIP_DIR / "mfma_bf16_gemm.hip").read_text()
    parsed, diags = parse_launch(source)
    assert diags == [] and parsed is not None
    [k] = parsed.spec.kernels
    assert k.name == "gemm_bf16_mfma_64x64x32" and k.block == [256] and k.threads == 256
    task = load_task("matmul")
    wl = task.workloads()[1]  # ragged_m96_n80_k72
    [launch] = resolve_launch(
        parsed.spec, task.axes_for(wl), task.params_for(wl), [*task.input_names, *task.output_names]
    )
    M, N = task.axes_for(wl)["M"], task.axes_for(wl)["N"]
    assert launch.grid == (-(-N // 64), -(-M // 64), 1) and launch.block == (256, 1, 1)
    assert [a.kind for a in launch.args] == ["tensor"] * 3 + ["scalar"] * 3
    assert [a.value for a in launch.args[3:]] == [M, N, task.axes_for(wl)["K"]]
    assert {a.type for a in launch.args[3:]} == {"i32"}


def test_launch_arg_types_and_floats():
    parsed, _ = parse_launch(
        "/* ksearch:launch\nkernels:\n  - {name: k, block: [64, 2], grid: [2, 3, 4], "
        "args: [x, 'M*N:i64', 'eps', 'eps:f64', '1/M']}\n*/"
    )
    [launch] = resolve_launch(parsed.spec, {"M": 4, "N": 8}, {"eps": 1e-6}, ["x"])
    assert launch.grid == (2, 3, 4) and launch.block == (64, 2, 1)
    assert [(a.type, a.value) for a in launch.args[1:]] == [
        ("i64", 32),
        ("f32", 1e-6),
        ("f64", 1e-6),
        ("f32", 0.25),
    ]


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        # line 1 is a comment, line 2 the marker, line 3 "kernels:"
        ("kernels:\n  - name: k\n    block: [2048]\n    grid: [1]\n", 5, "at most 1024"),
        ("kernels:\n  - name: k\n    block: [64]\n    grid: ['__import__(1)']\n", 6, "not allowed"),
        ("kernels:\n  - name: k\n    block: [64]\n    grid: [1]\n    bogus: 3\n", 7, "bogus"),
        ("kernels:\n  - name: 'not an ident'\n    block: [64]\n    grid: [1]\n", 4, "C identifier"),
        ("kernels:\n  - name: k\n    block: [64\n    grid: [1]\n", 6, "not valid YAML"),
        ("kernels: []\n", 3, "at least 1"),
        ("- just a list\n", 2, "mapping"),
    ],
)
def test_bad_launch_descriptions_are_located(body, line, fragment):
    source = "// header\n/* ksearch:launch\n" + body + "*/\n"
    parsed, diags = parse_launch(source, "cand.hip")
    assert parsed is None and diags
    assert diags[0].file == "cand.hip" and diags[0].line == line, diags
    assert fragment in diags[0].message


def test_launch_names_are_checked_against_the_task(tmp_path):
    src = (
        "/* ksearch:launch\nkernels:\n  - name: k\n    block: [64]\n    grid: [1]\n"
        "    args: [a, b, c, Q]\n*/\n"
    )
    r = compile_hip(src, tmp_path / "k.hip", MI355X, tmp_path / "out", task=load_task("matmul"))
    assert r.failure_class is FailureClass.COMPILE_ERROR
    assert r.diagnostics[0].line == 6 and "'Q'" in r.diagnostics[0].message


def test_parse_clang_diagnostics():
    text = (
        "In file included from /o/cand.hip:2:\n"
        "/o/cand.hip:12:34: error: expected ';' after expression\n"
        "   12 |   x = 1\n"
        "/usr/include/hip/x.h:3:1: warning: something odd [-Wodd]\n"
        "/o/cand.hip:4:2: note: declared here\n"
        "fatal error: cannot link module 'x.bc'\n"
        "ld.lld-22: error: undefined symbol: foo\n"
        "1 error generated when compiling for gfx950.\n"
    )
    diags = parse_clang_diagnostics(text, {"/o/cand.hip": "tests/cand.hip"})
    assert [(d.file, d.line, d.column, d.severity) for d in diags] == [
        ("tests/cand.hip", 12, 34, "error"),
        ("/usr/include/hip/x.h", 3, 1, "warning"),
        ("tests/cand.hip", 4, 2, "note"),
        (None, None, None, "error"),
        (None, None, None, "error"),
    ]
    assert diags[4].message == "ld.lld-22: undefined symbol: foo"


def test_hip_toolchain_reports_versions():
    versions = hip_toolchain()
    assert set(versions) == {"hipcc", "clang", "ld.lld", "hip_headers", "device_libs"}
    assert all(v is None or isinstance(v, str) for v in versions.values())
    if TOOLS.clang is not None:
        assert "clang version" in versions["clang"]


def test_run_tool_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "marker"
    t0 = time.monotonic()
    run = run_tool(["sh", "-c", f"sleep 30 & echo $! > {marker}; wait"], timeout_s=0.5)
    assert run.timed_out and run.returncode is None and time.monotonic() - t0 < 5
    child = int(marker.read_text())
    for _ in range(50):  # the child is SIGKILLed with its group; give the kernel a moment to reap it
        if not _alive(child):
            break
        time.sleep(0.05)
    assert not _alive(child), "a grandchild survived the timeout"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found
