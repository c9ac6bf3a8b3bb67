"""AMDGCN assembly metadata: one reader for every backend that emits gfx9xx code (Triton, HIP, TileLang)."""

from __future__ import annotations

import re
from typing import Any

import yaml

_METADATA_RE = re.compile(
    r"^\s*\.amdgpu_metadata\s*$(?P<yaml>.*?)^\s*\.end_amdgpu_metadata", re.MULTILINE | re.DOTALL
)
_SET_RE = re.compile(
    r"^\s*\.set\s+(?P<sym>[\w.$]+)\.(?P<what>num_vgpr|num_agpr),\s*(?P<expr>.+?)\s*$", re.MULTILINE
)
_COMMENT_RE = re.compile(
    r"^; (?P<key>NumVgprs|NumAgprs|TotalNumSgprs|ScratchSize|LDSByteSize|Occupancy):\s*"
    r"(?P<val>\d+)\b",
    re.MULTILINE,
)


def parse_amdgcn_metadata(asm: str) -> list[dict[str, Any]]:
    """Each kernel's `amdhsa.kernels` entry, plus `num_vgpr`/`num_agpr` (the kernel's own arch and
    accumulation VGPRs, from `.set` lines or `; NumVgprs:` comments) where the assembly states them."""
    m = _METADATA_RE.search(asm)
    if m is None:
        return []
    try:
        doc = yaml.safe_load(m.group("yaml")) or {}
    except yaml.YAMLError:
        return []
    kernels = [dict(k) for k in doc.get("amdhsa.kernels", []) if isinstance(k, dict)]
    own: dict[str, dict[str, int]] = {}
    for s in _SET_RE.finditer(asm):
        expr = s.group("expr")
        # max(N, amdgpu.max_num_vgpr): N is the kernel's own count (no callees); a plain int likewise.
        n = re.fullmatch(r"(?:max\()?(\d+)(?:,\s*amdgpu\.max_num_[av]gpr\))?", expr)
        if n:
            # Triton names local kernels `.L<name>`; HIP's external kernels have no prefix.
            own.setdefault(s.group("sym").removeprefix(".L"), {})[s.group("what")] = int(n.group(1))
    # Older compilers print numbers in the per-kernel comment block instead of .set symbols.
    blocks = re.split(r"^\s*\.(?:globl|protected)\s+", asm, flags=re.MULTILINE)
    for block in blocks[1:]:
        name = block.split(None, 1)[0] if block.strip() else ""
        for c in _COMMENT_RE.finditer(block):
            key = {"NumVgprs": "num_vgpr", "NumAgprs": "num_agpr"}.get(c.group("key"))
            if key:
                own.setdefault(name, {}).setdefault(key, int(c.group("val")))
    for k in kernels:
        k.update({f"_{key}": val for key, val in own.get(str(k.get(".name")), {}).items()})
    return kernels


def int_field(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def amd_resources(meta: dict[str, Any]) -> dict[str, int | None]:
    """KernelInfo's resource fields from one `parse_amdgcn_metadata` entry.

    `.vgpr_count` is arch VGPRs plus AGPRs (aligned); the arch count comes from the `.set` symbol
    or comment where the assembly states it. SGPR spills go to VGPR lanes, not memory, so they
    are kept apart from VGPR spills (which go to scratch).
    """
    total_vgpr = int_field(meta.get(".vgpr_count"))
    agprs = int_field(meta.get(".agpr_count"))
    if agprs is None:
        agprs = int_field(meta.get("_num_agpr"))
    arch_vgprs = int_field(meta.get("_num_vgpr"))
    if arch_vgprs is None and total_vgpr is not None and not agprs:
        arch_vgprs = total_vgpr  # with AGPRs the total includes alignment padding: leave it unknown
    return {
        "registers": arch_vgprs,
        "agprs": agprs,
        "sgprs": int_field(meta.get(".sgpr_count")),
        "spill_stores": int_field(meta.get(".vgpr_spill_count")),
        "sgpr_spills": int_field(meta.get(".sgpr_spill_count")),
        "local_bytes": int_field(meta.get(".private_segment_fixed_size")),
        "smem_bytes": int_field(meta.get(".group_segment_fixed_size")),
    }
