"""Local GPU detection through torch.cuda (CUDA or ROCm builds); no nvidia-smi needed.

`detect_local_device()` never raises: a machine without torch, without a GPU build of torch or
without a visible device gets None.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ksearch.target.profile import load_all_targets, load_target

_GIB = 1024**3


class LocalDevice(BaseModel):
    """One visible GPU as torch reports it, and the target profile it matches (if any)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    name: str
    vendor: Literal["nvidia", "amd"]
    compute_capability: str | None  # "9.0" on CUDA
    gcn_arch_name: str | None  # "gfx942:sramecc+:xnack-" on ROCm
    arch: str  # "sm_90" / "gfx942"
    memory_gib: float
    sm_count: int  # SMs (NVIDIA) or CUs (AMD)
    l2_cache_mib: float | None
    warp_size: int | None
    profile: str | None  # matching target profile name, e.g. "h100"
    profile_notes: list[str]  # why the match is partial or absent


def match_profile(
    *,
    name: str,
    vendor: str,
    arch: str,
    memory_gib: float,
    sm_count: int,
) -> tuple[str | None, list[str]]:
    """Pick the target profile for a device: (profile name or None, notes on the match)."""
    upper = name.upper()
    notes: list[str] = []
    profile: str | None = None
    if vendor == "nvidia":
        if arch == "sm_100" and "B200" in upper:
            profile = "b200"
            if "GB200" in upper:
                notes.append(
                    "GB200 runs the B200 die at a higher power limit; b200 (HGX) rates are conservative"
                )
        elif arch == "sm_90":
            if "H200" in upper or (memory_gib > 100 and "GH200" not in upper):
                profile = "h200"
            elif "H100" in upper:
                profile = "h100"
                if "PCIE" in upper or " NVL" in upper:
                    notes.append(
                        f"{name} is not the SXM5 part the h100 profile describes (clocks, bandwidth differ)"
                    )
            elif "GH200" in upper:
                notes.append(
                    "GH200 is not profiled; closest profile: h100 (same sm_90a SM, different memory)"
                )
        if profile is None and not notes:
            notes.append(f"no profile for {name} ({arch}); profiles exist for {_profiles_of(vendor)}")
    else:
        base = arch.split(":")[0]
        if base == "gfx942":
            full_part = sm_count == load_target("mi300x").sm_count and memory_gib < 200
            if "MI300X" in upper or ("MI3" not in upper and full_part):
                profile = "mi300x"
            else:
                notes.append(f"{name} ({base}) is not an MI300X; closest profile: mi300x (same CDNA 3 CU)")
        elif base == "gfx950":
            if "MI350X" in upper:
                notes.append(
                    "MI350X is not profiled; closest profile: mi355x (same CDNA 4 CU, 2200 vs 2400 MHz)"
                )
            else:
                profile = "mi355x"
                if "MI355X" not in upper:
                    notes.append(
                        f"device name {name!r} does not say MI355X; matched by gfx950 (could be an MI350X)"
                    )
        else:
            notes.append(f"no profile for {name} ({base}); profiles exist for {_profiles_of(vendor)}")
    # The profile's shape, as the device should report it: a mismatch hints at a partitioned part.
    expected_sms = load_target(profile).sm_count if profile else None
    if expected_sms is not None and sm_count != expected_sms:
        notes.append(
            f"device reports {sm_count} SMs/CUs but the {profile} profile has {expected_sms} "
            "(partitioned or a different SKU?)"
        )
    return profile, notes


def _profiles_of(vendor: str) -> str:
    return ", ".join(p.name for p in load_all_targets() if p.vendor == vendor)


def _device_from_props(index: int, props: Any, is_hip: bool) -> LocalDevice:
    name = str(getattr(props, "name", "") or "")
    memory_gib = round(float(getattr(props, "total_memory", 0)) / _GIB, 2)
    sm_count = int(getattr(props, "multi_processor_count", 0))
    l2 = getattr(props, "L2_cache_size", None)
    l2_mib = round(float(l2) / 1024**2, 2) if l2 else None
    warp = getattr(props, "warp_size", None)
    if is_hip:
        gcn = str(getattr(props, "gcnArchName", "") or "") or None
        arch = (gcn or "gfx-unknown").split(":")[0]
        vendor: Literal["nvidia", "amd"] = "amd"
        cc = None
    else:
        gcn = None
        major, minor = int(getattr(props, "major", 0)), int(getattr(props, "minor", 0))
        cc = f"{major}.{minor}"
        arch = f"sm_{major}{minor}"
        vendor = "nvidia"
    profile, notes = match_profile(
        name=name, vendor=vendor, arch=arch, memory_gib=memory_gib, sm_count=sm_count
    )
    return LocalDevice(
        index=index,
        name=name,
        vendor=vendor,
        compute_capability=cc,
        gcn_arch_name=gcn,
        arch=arch,
        memory_gib=memory_gib,
        sm_count=sm_count,
        l2_cache_mib=l2_mib,
        warp_size=int(warp) if warp else None,
        profile=profile,
        profile_notes=notes,
    )


def detect_local_devices() -> list[LocalDevice]:
    """Every GPU torch can see; [] without torch, without a GPU build or without a device."""
    try:
        import torch
    except ImportError:
        return []
    try:
        if not torch.cuda.is_available():
            return []
        is_hip = bool(getattr(torch.version, "hip", None))
        return [
            _device_from_props(i, torch.cuda.get_device_properties(i), is_hip)
            for i in range(torch.cuda.device_count())
        ]
    except (RuntimeError, AssertionError, OSError):
        # torch raises these for a broken driver / no device behind an is_available() race.
        return []


def detect_local_device(index: int = 0) -> LocalDevice | None:
    """The GPU at `index` (default: the current default device 0), or None where there is none."""
    devices = detect_local_devices()
    return next((d for d in devices if d.index == index), None)
