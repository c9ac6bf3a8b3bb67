"""Target profiles (b200, mi355x, h100, h200, mi300x), local device detection, hardware snapshot.

Importing this package does not import torch or triton; detection and the snapshot import them
lazily when called.
"""

from ksearch.target.detect import LocalDevice, detect_local_device, detect_local_devices, match_profile
from ksearch.target.profile import (
    ANY_DTYPE,
    CANONICAL_DTYPES,
    ExpectedInstructions,
    PeakRates,
    TargetProfile,
    family_matches,
    list_targets,
    load_all_targets,
    load_target,
    load_target_file,
    normalize_dtype,
    targets_dir,
)
from ksearch.target.render import describe_target, render_snapshot, render_target, render_target_list
from ksearch.target.snapshot import EnvSnapshot, GpuInfo, PackageInfo, ToolInfo, environment_snapshot

__all__ = [
    "ANY_DTYPE",
    "CANONICAL_DTYPES",
    "EnvSnapshot",
    "ExpectedInstructions",
    "GpuInfo",
    "LocalDevice",
    "PackageInfo",
    "PeakRates",
    "TargetProfile",
    "ToolInfo",
    "describe_target",
    "detect_local_device",
    "detect_local_devices",
    "environment_snapshot",
    "family_matches",
    "list_targets",
    "load_all_targets",
    "load_target",
    "load_target_file",
    "match_profile",
    "normalize_dtype",
    "render_snapshot",
    "render_target",
    "render_target_list",
    "targets_dir",
]
