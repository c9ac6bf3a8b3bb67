"""Target profiles: the hardware contract a candidate kernel is compiled, audited and scored against.

A profile lives in `configs/targets/<name>.yaml`; this module holds its pydantic model and the loader.
Values (rates, sizes, expected instruction families) live in the YAML, each next to a comment that
names its source; the `sources` mapping repeats those sources so the CLI can show them.

Conventions:

* Peak rates are **dense** (no 2:4 structured sparsity) in TFLOP/s, or TOP/s for int8.
* `expected_instructions[].families` are glob patterns (`fnmatch`, case-sensitive) over instruction
  mnemonics as they appear in PTX (NVIDIA) or AMDGCN assembly (AMD). Every family of an entry is
  expected in a well-lowered kernel; a family written `a|b` is satisfied by any one alternative.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ksearch.errors import TargetError, describe_validation_error

Vendor = Literal["nvidia", "amd"]

# Canonical dtype names used in `expected_instructions` and accepted (with aliases) by the API.
CANONICAL_DTYPES: tuple[str, ...] = (
    "fp64",
    "fp32",
    "tf32",
    "fp16",
    "bf16",
    "fp8",
    "mxfp8",
    "fp6",
    "mxfp6",
    "fp4",
    "mxfp4",
    "nvfp4",
    "int8",
)
ANY_DTYPE = "*"

_DTYPE_ALIASES: dict[str, str] = {
    "float64": "fp64",
    "double": "fp64",
    "f64": "fp64",
    "float32": "fp32",
    "float": "fp32",
    "f32": "fp32",
    "xf32": "tf32",
    "tensorfloat32": "tf32",
    "float16": "fp16",
    "half": "fp16",
    "f16": "fp16",
    "bfloat16": "bf16",
    "float8": "fp8",
    "float8_e4m3fn": "fp8",
    "float8_e4m3fnuz": "fp8",
    "float8_e5m2": "fp8",
    "float8_e5m2fnuz": "fp8",
    "e4m3": "fp8",
    "e5m2": "fp8",
    "fp8_e4m3": "fp8",
    "fp8_e5m2": "fp8",
    "mxfp8_e4m3": "mxfp8",
    "mxfp8_e5m2": "mxfp8",
    "mxfp6_e2m3": "mxfp6",
    "mxfp6_e3m2": "mxfp6",
    "float4_e2m1fn_x2": "fp4",
    "e2m1": "fp4",
    "int8_t": "int8",
    "i8": "int8",
    "s8": "int8",
    "uint8": "int8",
    "u8": "int8",
}

# Which peak-rate class a (canonical) dtype is scored against.
_RATE_CLASS: dict[str, str] = {
    "mxfp8": "fp8",
    "mxfp6": "fp6",
    "mxfp4": "fp4",
    "nvfp4": "fp4",
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def normalize_dtype(dtype: object) -> str:
    """Map a dtype spelling (`torch.bfloat16`, `bfloat16`, `bf16`, `float8_e4m3fn`, ...) to its
    canonical name (see `CANONICAL_DTYPES`). Raises TargetError for an unknown spelling."""
    text = str(dtype).strip().lower()
    if text.startswith("torch."):
        text = text[len("torch.") :]
    if text == ANY_DTYPE or text in CANONICAL_DTYPES:
        return text
    if text in _DTYPE_ALIASES:
        return _DTYPE_ALIASES[text]
    raise TargetError(
        f"unknown dtype {str(dtype)!r}; use one of {', '.join(CANONICAL_DTYPES)} "
        "(torch names such as bfloat16 or float8_e4m3fn are accepted too)"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TritonTarget(_Strict):
    """What Triton's `GPUTarget` needs: backend and arch (an int for CUDA, the gfx name for HIP)."""

    backend: Literal["cuda", "hip"]
    arch: int | str


class RegisterFile(_Strict):
    per_sm: int = Field(gt=0, description="32-bit registers per SM (NVIDIA) or CU (AMD)")
    max_per_thread: int = Field(
        gt=0, description="max 32-bit registers per thread (NVIDIA) / per lane incl. AGPRs (AMD)"
    )
    allocation_unit: int = Field(
        gt=0, description="registers are granted in multiples of this: per warp (NVIDIA), per lane (AMD)"
    )
    arch_vgprs_per_lane: int | None = Field(description="AMD: architectural VGPRs per lane")
    acc_vgprs_per_lane: int | None = Field(description="AMD: accumulation VGPRs (AGPRs) per lane")


class SharedMemory(_Strict):
    per_sm_kib: float = Field(gt=0, description="shared memory / LDS per SM or CU, KiB")
    max_per_block_kib: float = Field(gt=0, description="max per block / workgroup, KiB")
    reserved_per_block_kib: float = Field(ge=0, description="kept by the runtime per block / workgroup, KiB")


class Residency(_Strict):
    """How many warps (NVIDIA) / waves (AMD) and blocks one SM or CU can hold: the occupancy ceiling."""

    max_warps_per_sm: int = Field(gt=0, description="resident warps per SM (NVIDIA) / waves per CU (AMD)")
    max_blocks_per_sm: int | None = Field(
        description="resident blocks per SM; null where not a separate limit"
    )
    simds_per_cu: int | None = Field(gt=0, description="AMD: SIMDs per CU, each with its share of the VGPRs")


class Caches(_Strict):
    l2_mib: float = Field(gt=0, description="L2 cache, MiB (whole device)")
    last_level_mib: float | None = Field(description="memory-side last-level cache (AMD Infinity Cache), MiB")


class DeviceMemory(_Strict):
    type: str
    capacity_gib: float = Field(gt=0)
    bandwidth_tbs: float = Field(gt=0, description="peak HBM bandwidth, TB/s")


class PeakRates(_Strict):
    """Dense peak rates in TFLOP/s (int8: TOP/s). None: the part has no such path / no published rate."""

    fp64_vector: float | None
    fp64_matrix: float | None
    fp32_vector: float | None
    fp32_matrix: float | None
    tf32: float | None
    fp16: float | None
    bf16: float | None
    fp8: float | None
    fp6: float | None
    fp4: float | None
    int8: float | None

    @model_validator(mode="after")
    def _positive(self) -> PeakRates:
        for key, value in self.model_dump().items():
            if value is not None and value <= 0:
                raise ValueError(f"peak_tflops.{key} must be > 0 or null, got {value}")
        return self


class ExpectedInstructions(_Strict):
    """Instruction families a well-lowered kernel of one op family and dtype should show."""

    op_family: str = Field(min_length=1)
    dtype: str
    families: list[str] = Field(min_length=1)
    note: str

    @model_validator(mode="after")
    def _check(self) -> ExpectedInstructions:
        if self.dtype != ANY_DTYPE and self.dtype not in CANONICAL_DTYPES:
            raise ValueError(
                f"dtype {self.dtype!r} is not canonical; use '*' or one of {', '.join(CANONICAL_DTYPES)}"
            )
        if any(not f.strip() or any(not alt.strip() for alt in f.split("|")) for f in self.families):
            raise ValueError("families must be non-empty glob patterns ('a|b' for alternatives)")
        return self


class TargetProfile(_Strict):
    """One GPU target. See configs/targets/*.yaml for the values and their sources."""

    name: str
    vendor: Vendor
    product: str = Field(min_length=1)
    arch: str
    triton: TritonTarget
    warp_size: Literal[32, 64]
    sm_count: int = Field(gt=0, description="SMs (NVIDIA) or CUs (AMD)")
    clock_mhz: float = Field(gt=0, description="boost / peak engine clock, MHz")
    registers: RegisterFile
    shared_memory: SharedMemory
    residency: Residency
    caches: Caches
    memory: DeviceMemory
    tensor_memory_kib: float | None = Field(description="Blackwell tensor memory (TMEM) per SM, KiB")
    peaks: PeakRates = Field(alias="peak_tflops", description="dense peak rates; YAML key peak_tflops")
    expected_instructions: list[ExpectedInstructions]
    notes: list[str]
    sources: dict[str, Annotated[str, Field(min_length=1)]]

    _source_path: Path | None = PrivateAttr(default=None)

    # ---- validation -------------------------------------------------------------------------

    @model_validator(mode="after")
    def _consistent(self) -> TargetProfile:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"name {self.name!r} must be lower-case letters, digits, '_' or '-'")
        if self.vendor == "nvidia":
            if not re.match(r"^sm_\d+a?$", self.arch):
                raise ValueError(f"nvidia arch must look like sm_90a, got {self.arch!r}")
            if self.triton.backend != "cuda" or not isinstance(self.triton.arch, int):
                raise ValueError("nvidia targets need triton.backend 'cuda' and an integer triton.arch")
            if self.warp_size != 32:
                raise ValueError("nvidia targets have warp_size 32")
            if (
                self.registers.arch_vgprs_per_lane is not None
                or self.registers.acc_vgprs_per_lane is not None
            ):
                raise ValueError("registers.arch_vgprs_per_lane / acc_vgprs_per_lane are AMD-only; set null")
            if self.residency.simds_per_cu is not None:
                raise ValueError("residency.simds_per_cu is AMD-only; set null")
        else:
            if not re.match(r"^gfx[0-9a-f]+$", self.arch):
                raise ValueError(f"amd arch must look like gfx942, got {self.arch!r}")
            if self.triton.backend != "hip" or self.triton.arch != self.arch:
                raise ValueError("amd targets need triton.backend 'hip' and triton.arch equal to arch")
            if self.warp_size != 64:
                raise ValueError("amd (CDNA) targets have warp_size 64")
            if self.tensor_memory_kib is not None:
                raise ValueError("tensor_memory_kib is Blackwell-only; set null")
            if self.residency.simds_per_cu is None:
                raise ValueError("amd targets need residency.simds_per_cu (4 on CDNA 3 and CDNA 4)")
        if self.shared_memory.max_per_block_kib > self.shared_memory.per_sm_kib:
            raise ValueError("shared_memory.max_per_block_kib exceeds shared_memory.per_sm_kib")

        numeric = dict(_numeric_leaves(self))
        missing = sorted(
            path for path, value in numeric.items() if value is not None and path not in self.sources
        )
        if missing:
            raise ValueError(f"sources has no entry for {', '.join(missing)}")
        valid_paths = set(numeric) | {"product", "arch", "triton", "warp_size", "expected_instructions"}
        unknown = sorted(set(self.sources) - valid_paths)
        if unknown:
            raise ValueError(f"sources names unknown fields {', '.join(unknown)}")
        return self

    # ---- queries ------------------------------------------------------------------------------

    @property
    def source_path(self) -> Path | None:
        """The YAML file this profile was loaded from, if any."""
        return self._source_path

    def peak_tflops_or_none(self, dtype: str) -> float | None:
        """Dense peak for `dtype` in TFLOP/s (TOP/s for int8), or None where the part has none.

        `fp64` / `fp32` give the faster of the vector and matrix paths; `fp64_vector`,
        `fp64_matrix`, `fp32_vector`, `fp32_matrix` pick one. Microscaled dtypes (mxfp8, mxfp6,
        mxfp4, nvfp4) are scored against the rate of their element type.
        """
        rates = self.peaks
        key = str(dtype).strip().lower()
        if key in PeakRates.model_fields:
            return getattr(rates, key)
        canon = normalize_dtype(dtype)
        if canon == ANY_DTYPE:
            raise TargetError("peak_tflops needs a concrete dtype, not '*'")
        if canon in ("fp64", "fp32"):
            values = [v for v in (getattr(rates, f"{canon}_vector"), getattr(rates, f"{canon}_matrix")) if v]
            return max(values) if values else None
        return getattr(rates, _RATE_CLASS.get(canon, canon))

    def has_peak(self, dtype: str) -> bool:
        return self.peak_tflops_or_none(dtype) is not None

    def peak_tflops(self, dtype: str) -> float:
        """Dense peak for `dtype` in TFLOP/s (TOP/s for int8); TargetError where the part has none."""
        value = self.peak_tflops_or_none(dtype)
        if value is None:
            have = ", ".join(k for k, v in self.peaks.model_dump().items() if v is not None)
            raise TargetError(f"target {self.name!r} has no {str(dtype)} peak rate; rates it has: {have}")
        return value

    def expected_entries(self, op_family: str, dtype: str) -> list[ExpectedInstructions]:
        """Entries for `op_family` and `dtype`: exact-dtype entries, else the `'*'` entries."""
        op = op_family.strip().lower()
        canon = normalize_dtype(dtype)
        same_op = [e for e in self.expected_instructions if e.op_family.lower() == op]
        exact = [e for e in same_op if e.dtype == canon]
        return exact or [e for e in same_op if e.dtype == ANY_DTYPE]

    def expected_families(self, op_family: str, dtype: str) -> list[str]:
        """Instruction families (glob patterns, `a|b` alternatives) a well-lowered kernel of this op
        family and dtype should show on this target; [] where the profile states no expectation."""
        families: list[str] = []
        for entry in self.expected_entries(op_family, dtype):
            families.extend(f for f in entry.families if f not in families)
        return families

    def ridge_point(self, dtype: str) -> float | None:
        """Arithmetic intensity (FLOP per HBM byte) where the roofline turns flat, or None."""
        peak = self.peak_tflops_or_none(dtype)
        return None if peak is None else peak / self.memory.bandwidth_tbs

    def source_for(self, field: str) -> str | None:
        return self.sources.get(field)

    def triton_gpu_target(self) -> Any:
        """`triton.backends.compiler.GPUTarget` for this profile (imports triton lazily)."""
        from triton.backends.compiler import GPUTarget

        return GPUTarget(self.triton.backend, self.triton.arch, self.warp_size)


def _numeric_leaves(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, float | int | None]]:
    """Dotted paths of the numeric (or nullable-numeric) scalar fields of a profile."""
    for fname, info in type(model).model_fields.items():
        if fname in ("sources", "expected_instructions", "notes", "triton", "warp_size"):
            continue
        value = getattr(model, fname)
        path = f"{prefix}{info.alias or fname}"
        if isinstance(value, BaseModel):
            yield from _numeric_leaves(value, f"{path}.")
        elif isinstance(value, bool) or isinstance(value, str):
            continue
        elif value is None or isinstance(value, (int, float)):
            yield path, value


# ---- loading ------------------------------------------------------------------------------------


def targets_dir(directory: Path | None = None) -> Path:
    """Directory holding target YAML files: `directory` if given, else `configs_dir()/targets`."""
    if directory is not None:
        return Path(directory)
    from ksearch.paths import configs_dir

    return Path(configs_dir()) / "targets"


def list_targets(directory: Path | None = None) -> list[str]:
    """Names of the target profiles available (file stems of `<configs>/targets/*.yaml`), sorted."""
    root = targets_dir(directory)
    if not root.is_dir():
        return []
    return sorted(p.stem for p in root.glob("*.yaml") if p.is_file())


def load_target(name: str | Path, directory: Path | None = None) -> TargetProfile:
    """Load a target profile by name (`b200`, `H100`, ...) or by path to a YAML file."""
    text = str(name)
    if isinstance(name, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        return load_target_file(Path(name))
    key = text.strip().lower()
    known = list_targets(directory)
    if key not in known:
        root = targets_dir(directory)
        where = ", ".join(known) if known else f"none found in {root}"
        raise TargetError(f"unknown target {text!r}; known targets: {where} (see `ksearch targets list`)")
    profile = load_target_file(targets_dir(directory) / f"{key}.yaml")
    if profile.name != key:
        raise TargetError(
            f"target profile {profile.source_path}: field 'name' is {profile.name!r} but the file is "
            f"{key}.yaml; make them match"
        )
    return profile


def load_all_targets(directory: Path | None = None) -> list[TargetProfile]:
    return [load_target(n, directory) for n in list_targets(directory)]


def load_target_file(path: Path) -> TargetProfile:
    """Load and validate one profile YAML; every problem becomes a one-line TargetError."""
    path = Path(path)
    try:
        raw_text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TargetError(
            f"target profile {path} does not exist; check the path or run `ksearch targets list`"
        ) from None
    except OSError as exc:
        raise TargetError(f"cannot read target profile {path}: {exc.strerror}; check permissions") from None
    try:
        data = yaml.safe_load(raw_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TargetError(
            f"target profile {path} is not valid YAML{where}: {problem}; fix the syntax"
        ) from None
    if not isinstance(data, dict):
        raise TargetError(
            f"target profile {path} must be a YAML mapping of fields, got {type(data).__name__}"
        )
    try:
        profile = TargetProfile.model_validate(data)
    except ValidationError as exc:
        raise TargetError(f"target profile {path}: {describe_validation_error(exc)}") from None
    profile._source_path = path
    return profile


def family_matches(family: str, mnemonic: str) -> bool:
    """Whether one instruction `mnemonic` (e.g. `wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16`
    or `v_mfma_f32_32x32x16_bf16`) satisfies an expected `family` (glob; `a|b` = either)."""
    return any(fnmatchcase(mnemonic, alt.strip()) for alt in family.split("|"))
