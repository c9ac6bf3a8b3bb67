"""The emitted-code audit: what the compiler produced for one target, against what that target
needs for the task's op class and dtype. Returns the EvidencePacket's audit block.

Verdicts with severity "fail" carry the failure class a gate may reject on (a GEMM with no tensor
core instructions, a spill, a block over the shared-memory limit); "warn" verdicts are reported
only (a missing TMA path, low occupancy).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ksearch.audit.isa import families_in, read_ops
from ksearch.compile.result import CompileResult, KernelInfo
from ksearch.evidence import Audit, FailureClass, Verdict
from ksearch.target.profile import TargetProfile, family_matches

if TYPE_CHECKING:
    from ksearch.task import Task

TENSOR_CORE = re.compile(r"mma|mfma|wgmma", re.IGNORECASE)
LOW_OCCUPANCY = 0.125  # below 8 of 64 warps (NVIDIA) / 4 of 32 waves (AMD) latency hiding is thin


def occupancy(kernel: KernelInfo, profile: TargetProfile) -> float | None:
    """Resident warps (waves) per SM (CU) over the maximum, from registers and shared memory."""
    threads = kernel.threads_per_block or (kernel.num_warps or 0) * profile.warp_size
    if not threads:
        return None
    warps = math.ceil(threads / profile.warp_size)
    max_warps = profile.residency.max_warps_per_sm
    limits = [max_warps // warps]
    smem_per_sm = profile.shared_memory.per_sm_kib * 1024
    smem_reserved = profile.shared_memory.reserved_per_block_kib * 1024
    unit = profile.registers.allocation_unit
    if profile.vendor == "nvidia":
        if kernel.registers:
            per_warp = math.ceil(kernel.registers * profile.warp_size / unit) * unit
            limits.append(profile.registers.per_sm // (per_warp * warps))
        if kernel.smem_bytes:
            limits.append(int(smem_per_sm // (kernel.smem_bytes + smem_reserved)))
        if profile.residency.max_blocks_per_sm:
            limits.append(profile.residency.max_blocks_per_sm)
        return min(limits) * warps / max_warps
    # AMD: waves per SIMD bounded by the unified VGPR file; workgroups per CU by LDS.
    vgprs = (kernel.registers or 0) + (kernel.agprs or 0)
    waves = max_warps
    simds = profile.residency.simds_per_cu or 1
    if vgprs:
        per_lane = profile.registers.per_sm // (profile.warp_size * simds)
        granted = math.ceil(vgprs / unit) * unit
        waves = min(waves, (per_lane // granted) * simds)
    if kernel.smem_bytes:
        waves = min(waves, int(smem_per_sm // (kernel.smem_bytes + smem_reserved)) * warps)
    return min(waves, limits[0] * warps) / max_warps


def _isa_texts(result: CompileResult, vendor: str) -> dict[str, list[Path]]:
    if vendor == "nvidia":
        return {"ptx": result.artifact_paths("ptx"), "sass": result.artifact_paths("sass")}
    return {"amdgcn": result.artifact_paths("amdgcn")}


def max_intensity(task: Task, dtype: str) -> float | None:
    """The task's highest arithmetic intensity (`Task.arithmetic_intensity`) over its workloads;
    None where a FLOP count is missing (0, as importers write it when they cannot count). A run
    passes its task narrowed to the workloads it evaluates (`Task.only`): a search over decode shapes
    alone may then keep a kernel that feeds no tensor cores, bound as it is by memory."""
    wls = task.workloads()
    if not wls or any(not task.flops(wl, dtype) for wl in wls):
        return None
    return max(task.arithmetic_intensity(wl, dtype) for wl in wls)


def audit_compile(
    result: CompileResult, profile: TargetProfile, op_family: str, dtype: str, intensity: float | None = None
) -> Audit:
    """Audit a successful compile for one target; a failed compile gets a single failing verdict.

    `intensity` is the task's highest arithmetic intensity (`max_intensity`): below the ridge point
    of the target's vector (fp32, no tensor-core) rate at every workload, CUDA cores keep up with HBM
    and a tensor-core path is not demanded (decode attention reads its KV cache at a few FLOP per
    byte). Between that and the tensor-core ridge a kernel without tensor cores is compute-bound."""
    if not result.ok:
        return Audit(
            target=profile.name,
            verdicts=[
                Verdict(check="compiled", ok=False, detail=result.message, failure_class=result.failure_class)
            ],
        )
    texts = _isa_texts(result, profile.vendor)
    ops_by_isa = {isa: read_ops(paths, isa) for isa, paths in texts.items()}
    found: dict[str, int] = {}
    for isa, ops in ops_by_isa.items():
        found.update(families_in(ops, isa))
    # Expected families are patterns over the virtual ISA: PTX on NVIDIA, AMDGCN on AMD.
    primary: Counter[str] = ops_by_isa.get("ptx") or ops_by_isa.get("amdgcn") or Counter()
    expected = profile.expected_families(op_family, dtype)
    verdicts: list[Verdict] = []
    missing_tc: list[str] = []
    for pattern in expected:
        hits = sum(c for op, c in primary.items() if family_matches(pattern, op))
        is_tc = bool(TENSOR_CORE.search(pattern))
        if is_tc and not hits:
            missing_tc.append(pattern)
        elif not is_tc:
            verdicts.append(
                Verdict(
                    check=f"expected:{pattern}",
                    ok=hits > 0,
                    severity="warn",
                    detail=f"{hits} instructions" if hits else "not found in the emitted code",
                )
            )
    tc_patterns = [p for p in expected if TENSOR_CORE.search(p)]
    ridge = profile.ridge_point("fp32_vector")
    if tc_patterns and intensity is not None and ridge is not None and intensity < ridge:
        verdicts.insert(
            0,
            Verdict(
                check="tensor_core_path",
                ok=True,
                severity="info",
                detail=(
                    f"not demanded: memory-bound without tensor cores at every workload (at most {intensity:.1f} "
                    f"FLOP/byte; the {profile.name} ridge point of its fp32 vector rate is {ridge:.0f})"
                ),
            ),
        )
    elif tc_patterns:
        ok = len(missing_tc) < len(tc_patterns)
        verdicts.insert(
            0,
            Verdict(
                check="tensor_core_path",
                ok=ok,
                failure_class=None if ok else FailureClass.AUDIT_MISSING_TENSOR_CORE_PATH,
                detail=("found" if ok else f"none of {', '.join(tc_patterns)} in the emitted code")
                + f" ({op_family} {dtype} on {profile.arch})",
            ),
        )

    kernels = result.kernels
    registers = max((k.registers or 0) + (k.agprs or 0) for k in kernels) if kernels else None
    spills = sum((k.spill_stores or 0) + (k.spill_loads or 0) for k in kernels) if kernels else None
    smem = max((k.smem_bytes or 0) for k in kernels) if kernels else None
    occ = [o for o in (occupancy(k, profile) for k in kernels) if o is not None]
    occupancy_min = min(occ) if occ else None

    unit = "bytes" if profile.vendor == "nvidia" else "VGPRs"
    verdicts.append(
        Verdict(
            check="register_spill",
            ok=not spills,
            failure_class=None if not spills else FailureClass.AUDIT_REGISTER_SPILL,
            detail=f"{spills or 0} {unit} spilled" + _per_kernel(kernels, "spill_stores"),
        )
    )
    sgpr = sum(k.sgpr_spills or 0 for k in kernels)
    if sgpr:
        verdicts.append(
            Verdict(
                check="sgpr_spill_to_vgpr",
                ok=False,
                severity="info",
                detail=f"{sgpr} SGPRs spilled into VGPR lanes (no memory traffic)",
            )
        )
    limit = int(profile.shared_memory.max_per_block_kib * 1024)
    if smem is not None:
        over = smem > limit
        verdicts.append(
            Verdict(
                check="smem_limit",
                ok=not over,
                failure_class=FailureClass.AUDIT_SMEM_OVER_LIMIT if over else None,
                detail=f"{smem} of {limit} bytes per block",
            )
        )
    reg_limit = profile.registers.max_per_thread
    if registers is not None:
        over = registers > reg_limit
        verdicts.append(
            Verdict(
                check="register_limit",
                ok=not over,
                failure_class=FailureClass.AUDIT_RESOURCE_LIMIT if over else None,
                detail=f"{registers} of {reg_limit} registers per thread",
            )
        )
    if occupancy_min is not None:
        low = occupancy_min < LOW_OCCUPANCY
        verdicts.append(
            Verdict(
                check="occupancy",
                ok=not low,
                severity="warn",
                failure_class=FailureClass.AUDIT_LOW_OCCUPANCY if low else None,
                detail=f"{occupancy_min:.0%} of the SM's warp slots resident (estimate)",
            )
        )
    return Audit(
        target=profile.name,
        families_found=sorted(found),
        families_expected=expected,
        registers=registers,
        spills=spills,
        smem_bytes=smem,
        occupancy=occupancy_min,
        verdicts=verdicts,
    )


def _per_kernel(kernels: list[KernelInfo], field: str) -> str:
    bad = [f"{k.name}: {getattr(k, field)}" for k in kernels if getattr(k, field)]
    return f" ({'; '.join(bad)})" if bad else ""


def audit_failure(audit: Audit) -> FailureClass | None:
    """The first failing verdict's class, for a gate that rejects on the audit."""
    for v in audit.verdicts:
        if not v.ok and v.severity == "fail" and v.failure_class is not None:
            return v.failure_class
    return None
