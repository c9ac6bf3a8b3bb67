"""Reading emitted code: the instruction mnemonics in PTX, SASS and AMDGCN text, and the named
instruction families a kernel engineer looks for in them."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

# PTX: optional predicate guard, then a dotted opcode (`tcgen05.mma.cta_group::1.kind::f16`).
_PTX_OP = re.compile(r"^\s*(?:@!?%\w+\s+)?([a-z][a-z0-9_]*(?:\.[A-Za-z0-9_:]+)*)(?=[\s;]|$)")
# SASS from cuobjdump/nvdisasm: `/*0090*/  @!P0 UTCHMMA gdesc[UR4], ...`
_SASS_OP = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)")
# AMDGCN: an indented lower-case opcode; directives start with '.', comments with ';'.
_AMDGCN_OP = re.compile(r"^\s+([a-z][a-z0-9_]*)(?=\s|$)")

# Named families, per ISA: (family, regex over mnemonics). Order is report order.
PTX_FAMILIES: list[tuple[str, str]] = [
    ("tcgen05.mma", r"^tcgen05\.mma"),
    ("tcgen05.ld/st", r"^tcgen05\.(ld|st)\b"),
    ("tcgen05.cp", r"^tcgen05\.cp"),
    ("wgmma", r"^wgmma\.mma_async"),
    ("mma.sync", r"^mma\.sync"),
    ("ldmatrix", r"^ldmatrix"),
    ("stmatrix", r"^stmatrix"),
    ("tma (cp.async.bulk.tensor)", r"^cp\.async\.bulk\.tensor"),
    ("cp.async.bulk", r"^cp\.async\.bulk(?!\.tensor)"),
    ("cp.async", r"^cp\.async\.(ca|cg)"),
    ("mbarrier", r"^mbarrier"),
    ("ld.global.v8", r"^ld\.global.*\.v8\."),
    ("ld.global.v4", r"^ld\.global.*\.v4\."),
    ("ld.global.v2", r"^ld\.global.*\.v2\."),
    ("shfl.sync", r"^shfl\.sync"),
    ("ex2.approx", r"^ex2\.approx"),
    ("setmaxnreg", r"^setmaxnreg"),
    ("local memory (ld/st.local)", r"^(ld|st)\.local"),
]
SASS_FAMILIES: list[tuple[str, str]] = [
    ("UTCMMA (tcgen05)", r"^UTC[A-Z]*MMA"),
    ("HGMMA (wgmma)", r"^HGMMA"),
    ("HMMA (mma.sync)", r"^HMMA"),
    ("LDSM (ldmatrix)", r"^LDSM"),
    ("UTMALDG (TMA load)", r"^UTMALDG"),
    ("UTMASTG (TMA store)", r"^UTMASTG"),
    ("LDGSTS (cp.async)", r"^LDGSTS"),
    ("LDL/STL (local memory)", r"^(LDL|STL)\b"),
]
AMDGCN_FAMILIES: list[tuple[str, str]] = [
    ("v_mfma_scale", r"^v_mfma_scale_"),
    ("v_mfma", r"^v_mfma_(?!scale_)"),
    ("v_smfmac", r"^v_smfmac_"),
    ("ds_read_b64_tr", r"^ds_read_b64_tr_"),
    ("ds_read_b128", r"^ds_read_b128"),
    ("buffer_load ... lds", r"^buffer_load_.*lds|^global_load_lds_"),
    ("global_load_dwordx4", r"^global_load_dwordx4|^buffer_load_dwordx4"),
    ("v_dot", r"^v_dot"),
    ("scratch spill (scratch_/buffer_store to private)", r"^scratch_(store|load)"),
]
FAMILIES = {"ptx": PTX_FAMILIES, "sass": SASS_FAMILIES, "amdgcn": AMDGCN_FAMILIES}
_OPCODE = {"ptx": _PTX_OP, "sass": _SASS_OP, "amdgcn": _AMDGCN_OP}


def mnemonics(text: str, isa: str) -> Counter[str]:
    """Count of each instruction mnemonic in PTX, SASS or AMDGCN text."""
    pattern = _OPCODE[isa]
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if isa == "amdgcn" and (line.lstrip().startswith((".", ";")) or line.rstrip().endswith(":")):
            continue
        if isa == "ptx":
            line = line.split("//", 1)[0]
            if line.lstrip().startswith((".", "$", "{", "}")):
                continue
        m = pattern.search(line) if isa == "sass" else pattern.match(line)
        if m:
            counts[m.group(1)] += 1
    return counts


def families_in(ops: Counter[str], isa: str) -> dict[str, int]:
    """Named families present, with how many instructions of each."""
    found: dict[str, int] = {}
    for name, regex in FAMILIES[isa]:
        rx = re.compile(regex)
        n = sum(c for op, c in ops.items() if rx.search(op))
        if n:
            found[name] = n
    return found


def read_ops(paths: list[Path], isa: str) -> Counter[str]:
    total: Counter[str] = Counter()
    for p in paths:
        total += mnemonics(p.read_text(errors="replace"), isa)
    return total
