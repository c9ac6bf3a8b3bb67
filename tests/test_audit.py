"""The audit on real compiler output: Triton AOT builds for sm_100a, sm_90a and gfx950."""

from pathlib import Path

import pytest

from ksearch.audit import audit_compile, audit_failure, occupancy
from ksearch.audit.isa import families_in, mnemonics
from ksearch.compile import CompileRequest, CompileResult, KernelInfo, compile_many
from ksearch.evidence import FailureClass
from ksearch.target import list_targets, load_target

CANDIDATES = Path(__file__).parent / "candidates" / "triton"
TARGETS = ["b200", "h100", "mi355x"]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    cache = tmp_path_factory.mktemp("compile-cache")
    memo: dict = {}

    def _build(candidate: str, task: str = "matmul", dtype: str = "bfloat16") -> dict[str, CompileResult]:
        if (candidate, task, dtype) not in memo:
            reqs = [
                CompileRequest(source_path=str(CANDIDATES / candidate), task=task, target=t, dtype=dtype)
                for t in TARGETS
            ]
            memo[candidate, task, dtype] = dict(zip(TARGETS, compile_many(reqs, cache_dir=cache, jobs=2)))
        return memo[candidate, task, dtype]

    return _build


def _audit(result, target, op="gemm", dtype="bfloat16"):
    return audit_compile(result, load_target(target), op, dtype)


def test_bf16_matmul_finds_each_targets_tensor_core_path(build):
    results = build("matmul_dot.py")
    expect = {"b200": "tcgen05.mma", "h100": "wgmma", "mi355x": "v_mfma"}
    for target, family in expect.items():
        r = results[target]
        assert r.ok, r.message
        audit = _audit(r, target)
        assert family in audit.families_found, audit.families_found
        tc = next(v for v in audit.verdicts if v.check == "tensor_core_path")
        assert tc.ok, tc.detail
        assert audit_failure(audit) in (None, FailureClass.AUDIT_REGISTER_SPILL)
    # the bf16 MFMA on gfx950 is a bf16 one
    amd_ops = mnemonics(results["mi355x"].artifact_paths("amdgcn")[0].read_text(), "amdgcn")
    assert any(op.startswith("v_mfma") and op.endswith("bf16") for op in amd_ops)


def test_naive_matmul_has_no_tensor_core_path_on_any_target(build):
    for target, r in build("matmul_naive.py").items():
        assert r.ok, r.message
        audit = _audit(r, target)
        assert audit_failure(audit) is FailureClass.AUDIT_MISSING_TENSOR_CORE_PATH, (target, audit.verdicts)
        assert not {"tcgen05.mma", "wgmma", "mma.sync", "v_mfma"} & set(audit.families_found)


def test_a_tensor_core_path_is_demanded_only_where_some_workload_is_compute_bound(build):
    from ksearch.audit import max_intensity
    from ksearch.task import load_task

    decode = max_intensity(load_task("gqa_decode_attention"), "float16")
    assert all(
        decode < load_target(t).ridge_point("fp32_vector") for t in list_targets()
    )  # CUDA cores keep up
    matmul = max_intensity(load_task("matmul"), "bfloat16")
    assert matmul > load_target("h100").ridge_point("bfloat16")
    # a search over the decode shapes alone is memory-bound: no tensor-core path is demanded there
    gemv = max_intensity(load_task("matmul").only(["llama3_8b_qkv_decode_m16_n6144_k4096"]), "bfloat16")
    assert gemv < load_target("h100").ridge_point("fp32_vector") < matmul
    for target, r in build("matmul_naive.py").items():
        profile = load_target(target)
        memory_bound = audit_compile(r, profile, "gemm", "bfloat16", intensity=1.0)
        tc = next(v for v in memory_bound.verdicts if v.check == "tensor_core_path")
        assert tc.ok and "memory-bound" in tc.detail and audit_failure(memory_bound) is None, (target, tc)
        compute_bound = audit_compile(r, profile, "gemm", "bfloat16", intensity=matmul)
        assert audit_failure(compute_bound) is FailureClass.AUDIT_MISSING_TENSOR_CORE_PATH
        # memory-bound on tensor cores, compute-bound without them: a tensor-core path is still demanded
        between = (profile.ridge_point("fp32_vector") + profile.ridge_point("bfloat16")) / 2
        assert (
            audit_failure(audit_compile(r, profile, "gemm", "bfloat16", intensity=between))
            is FailureClass.AUDIT_MISSING_TENSOR_CORE_PATH
        ), target


def test_spilling_kernel_is_reported_with_its_spill_count(build):
    r = build("spill.py")["h100"]
    assert r.ok, r.message
    audit = _audit(r, "h100")
    spill = next(v for v in audit.verdicts if v.check == "register_spill")
    assert not spill.ok and spill.failure_class is FailureClass.AUDIT_REGISTER_SPILL
    assert audit.spills and audit.spills > 0
    assert str(audit.spills) in spill.detail
    # the spill shows in the SASS as local-memory traffic, not only in ptxas' summary
    assert "LDL/STL (local memory)" in audit.families_found


def test_norm_kernel_is_not_held_to_a_tensor_core_path(build):
    results = build("rmsnorm_rows.py", task="rmsnorm", dtype="float16")
    for target, r in results.items():
        audit = audit_compile(r, load_target(target), "norm", "float16")
        assert not any(v.check == "tensor_core_path" for v in audit.verdicts)
        assert audit_failure(audit) is None, audit.verdicts


def test_family_parser_reads_ptx_sass_and_amdgcn_from_a_real_build(build):
    r = build("matmul_dot.py")["b200"]
    ptx_ops = mnemonics(r.artifact_paths("ptx")[0].read_text(), "ptx")
    assert any(op.startswith("tcgen05.mma.cta_group::1.kind::f16") for op in ptx_ops)
    sass = r.artifact_paths("sass")
    assert sass, "an NVIDIA build carries SASS"
    assert "UTCMMA (tcgen05)" in families_in(mnemonics(sass[0].read_text(), "sass"), "sass")


# ---- resource arithmetic (no compiler involved: hand-computed limits)


def test_occupancy_nvidia_register_bound():
    h100 = load_target("h100")
    # 128 regs x 32 lanes = 4096 per warp; 4-warp blocks need 16384: 65536 / 16384 = 4 blocks = 16 warps of 64
    assert occupancy(KernelInfo(name="k", num_warps=4, registers=128), h100) == pytest.approx(16 / 64)
    # shared memory bound: 228 KiB / (100 KiB + 1 KiB reserved) = 2 blocks of 8 warps
    k = KernelInfo(name="k", num_warps=8, registers=32, smem_bytes=100 * 1024)
    assert occupancy(k, h100) == pytest.approx(16 / 64)


def test_occupancy_amd_vgpr_bound():
    mi355x = load_target("mi355x")
    # 512 VGPRs per lane per SIMD; 128 + 64 AGPRs = 192 -> 2 waves per SIMD -> 8 per CU of 32
    k = KernelInfo(name="k", num_warps=4, registers=128, agprs=64)
    assert occupancy(k, mi355x) == pytest.approx(8 / 32)


def test_smem_over_the_per_block_limit_is_a_named_failure():
    h100 = load_target("h100")
    result = CompileResult(
        ok=True,
        language="triton",
        target="h100",
        arch="sm_90a",
        kernels=[KernelInfo(name="k", num_warps=4, registers=64, smem_bytes=300 * 1024)],
    )
    audit = audit_compile(result, h100, "norm", "float16")
    assert audit_failure(audit) is FailureClass.AUDIT_SMEM_OVER_LIMIT


@pytest.mark.skipif(
    __import__("shutil").which("clang++-22") is None,
    reason="clang-22 not installed: apt-get install clang-22 lld-22 libamdhip64-dev",
)
def test_hip_mfma_kernels_are_audited(tmp_path):
    from ksearch.compile.hip_backend import compile_hip

    hip = Path(__file__).parent / "candidates" / "hip"
    mi355x = load_target("mi355x")
    (bf16,) = compile_many(
        [
            CompileRequest(
                source_path=str(hip / "mfma_bf16_gemm.hip"), task="matmul", target="mi355x", dtype="bfloat16"
            )
        ],
        cache_dir=tmp_path,
    )
    assert bf16.ok, bf16.message
    a = audit_compile(bf16, mi355x, "gemm", "bfloat16")
    assert "v_mfma" in a.families_found and audit_failure(a) is None, a.verdicts
    # The MXFP4 kernel takes scale tensors no built-in task has, so it compiles without a task.
    path = hip / "mfma_scale_fp4.hip"
    fp4 = compile_hip(path.read_text(), path, mi355x, tmp_path / "fp4")
    assert fp4.ok, fp4.message
    b = audit_compile(fp4, mi355x, "gemm", "mxfp4")
    assert "v_mfma_scale" in b.families_found
    assert next(v for v in b.verdicts if v.check == "tensor_core_path").ok, b.verdicts
