"""What a compile produces, whichever backend made it: the contract the audit and the harness read.

A backend compiles one candidate for one target and returns a CompileResult: whether it built,
the kernels it built with their resource metadata, the artifacts on disk (by kind), located
diagnostics when it did not build, and the toolchain versions that made it (part of the cache key).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ksearch.evidence import Diagnostic, FailureClass, Language

# Artifact kinds, by backend: triton ttir/ttgir/llir/ptx/cubin/sass (NVIDIA) or amdgcn/hsaco (AMD);
# tilelang cuda_src/hip_src and then cubin/sass or amdgcn/hsaco; hip amdgcn/hsaco.
ARTIFACT_KINDS = (
    "source",
    "ttir",
    "ttgir",
    "llir",
    "ptx",
    "cubin",
    "sass",
    "amdgcn",
    "hsaco",
    "cuda_src",
    "hip_src",
    "compile_log",
)


class KernelInfo(BaseModel):
    """One compiled kernel (one specialization) and its resources, as the compiler reported them."""

    model_config = ConfigDict(extra="forbid")
    name: str
    specialization: dict = Field(
        default_factory=dict, description="signature, constexprs, options it was built with"
    )
    num_warps: int | None = None
    num_stages: int | None = None
    threads_per_block: int | None = None
    registers: int | None = Field(
        default=None, description="NVIDIA: registers per thread; AMD: arch VGPRs per lane"
    )
    agprs: int | None = Field(default=None, description="AMD accumulation VGPRs per lane")
    sgprs: int | None = None
    spill_stores: int | None = Field(
        default=None, description="NVIDIA: spill-store bytes; AMD: VGPRs spilled to scratch"
    )
    spill_loads: int | None = Field(default=None, description="NVIDIA: spill-load bytes; AMD: None")
    sgpr_spills: int | None = Field(
        default=None, description="AMD: SGPRs spilled into VGPR lanes (no memory traffic)"
    )
    local_bytes: int | None = Field(
        default=None, description="per-thread local (NVIDIA) or scratch (AMD) memory"
    )
    smem_bytes: int | None = Field(
        default=None, description="shared memory / LDS per block, static plus dynamic"
    )
    artifacts: dict[str, str] = Field(default_factory=dict, description="kind -> absolute path")


class CompileResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ok: bool
    language: Language
    target: str = Field(description="target profile name")
    arch: str = Field(description="sm_100a, sm_90a, gfx950, gfx942, ...")
    seconds: float = 0.0
    cached: bool = False
    key: str = Field(default="", description="cache key: source, target, toolchain versions, flags")
    kernels: list[KernelInfo] = Field(default_factory=list)
    artifacts: dict[str, str] = Field(
        default_factory=dict, description="candidate-level artifacts, kind -> path"
    )
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    failure_class: FailureClass | None = None
    message: str = ""
    toolchain: dict[str, str | None] = Field(default_factory=dict)

    def artifact_paths(self, kind: str) -> list[Path]:
        """Every artifact of one kind, the candidate's and each kernel's."""
        paths = [self.artifacts[kind]] if kind in self.artifacts else []
        paths += [k.artifacts[kind] for k in self.kernels if kind in k.artifacts]
        return [Path(p) for p in paths]
