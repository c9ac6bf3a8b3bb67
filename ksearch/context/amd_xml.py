"""Ingest AMD's machine-readable ISA specification (XML) into corpus chapters.

AMD publishes each GPU ISA as an XML file (GPUOpen "machine-readable ISA"; schema documented in the
isa_spec_manager repository, documentation/spec_documentation.md):

    Spec/Document                 Copyright, Sensitivity, ReleaseDate, SchemaVersion
    Spec/ISA/Architecture         ArchitectureName, ArchitectureId
    Spec/ISA/Encodings/Encoding   EncodingName, BitCount, Description, MicrocodeFormat/BitMap/Field
                                  (FieldName, BitLayout/Range(BitCount, BitOffset)), EncodingIdentifiers
    Spec/ISA/Instructions/Instruction
                                  InstructionName, Description, InstructionFlags, FunctionalGroup,
                                  InstructionEncodings/InstructionEncoding (EncodingName, Opcode,
                                  Operands/Operand[Input, Output, IsImplicit, Order]
                                  (FieldName, DataFormatName, OperandType, OperandSize))
    Spec/ISA/DataFormats, OperandTypes, FunctionalGroups

`ingest_amd_xml` writes one chapter per encoding, `<family>-xml/<encoding>`, with a `##` section per
instruction (opcode, flags, operands with field, direction, type, data format and width), plus an
index chapter, and the manifest of the output root. The default output is `isa_corpus/local/`,
which git ignores: the user's downloaded specification stays on the user's machine. The XML is read
with the standard library's ElementTree; namespaces, if any, are ignored.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ksearch.context.corpus import CHAPTERS, write_manifest
from ksearch.context.errors import ContextFileError
from ksearch.context.locate import known_targets, local_corpus_dir

# Architecture family -> LLVM processor, to find the target profiles an XML file is about.
FAMILY_ARCH = {"cdna4": "gfx950", "cdna3": "gfx942", "cdna2": "gfx90a", "cdna1": "gfx908"}
# Instruction-name prefix -> corpus topic, so ingested sections join the topic packets.
PREFIX_TOPICS = (
    ("v_mfma_scale", "mfma_scale"),
    ("v_mfma", "mfma"),
    ("v_smfmac", "mfma"),
    ("v_accvgpr", "vgpr_agpr"),
    ("ds_read_b64_tr", "ds_ops"),
    ("ds_read_b96_tr", "ds_ops"),
    ("ds_", "ds_ops"),
    ("s_waitcnt", "waits"),
    ("buffer_load", "lds_tiling"),
    ("global_load_lds", "lds_tiling"),
)


@dataclass
class Operand:
    order: int
    field: str
    data_format: str
    type: str
    size: int
    input: bool
    output: bool
    implicit: bool


@dataclass
class InstructionForm:
    encoding: str
    opcode: int | None
    condition: str
    operands: list[Operand] = field(default_factory=list)


@dataclass
class Instruction:
    name: str
    description: str
    group: str
    subgroup: str
    flags: dict[str, bool]
    forms: list[InstructionForm] = field(default_factory=list)


@dataclass
class Encoding:
    name: str
    bits: int | None
    description: str
    fields: list[tuple[str, int, int]]  # (name, offset, width) of the first range


@dataclass
class IsaSpec:
    architecture: str
    architecture_id: str
    release_date: str
    schema_version: str
    encodings: dict[str, Encoding]
    instructions: list[Instruction]
    data_formats: list[tuple[str, str, int | None]]  # (name, data type, bits)
    operand_types: list[tuple[str, str]]  # (name, description)


@dataclass(frozen=True)
class IngestReport:
    architecture: str
    family: str
    targets: list[str]
    out: Path
    chapters: list[str]
    instructions: int


# ---- parsing ---------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element | None, name: str) -> ET.Element | None:
    if el is None:
        return None
    return next((c for c in el if _local(c.tag) == name), None)


def _children(el: ET.Element | None, name: str) -> list[ET.Element]:
    return [] if el is None else [c for c in el if _local(c.tag) == name]


def _text(el: ET.Element | None) -> str:
    """All text under an element (descriptions may hold <p>/<br/> markup), whitespace collapsed."""
    return "" if el is None else re.sub(r"\s+", " ", "".join(el.itertext())).strip()


def _int(el: ET.Element | None) -> int | None:
    raw = _text(el)
    if not raw:
        return None
    radix = int(el.get("Radix", "10")) if el is not None else 10
    try:
        return int(raw, radix)
    except ValueError:
        return None


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def parse_amd_isa_xml(path: Path) -> IsaSpec:
    """Read one AMD ISA XML file; ContextFileError (one line, naming the file) when it is not one."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise ContextFileError(
            f"{path} does not exist; download the XML from GPUOpen's machine-readable ISA page"
        ) from None
    except ET.ParseError as exc:
        raise ContextFileError(f"{path} is not well-formed XML ({exc}); is it AMD's ISA XML?") from None
    if _local(root.tag) != "Spec" or _child(root, "ISA") is None:
        raise ContextFileError(
            f"{path}: root element is <{_local(root.tag)}>, expected <Spec> holding <ISA> "
            "(AMD's machine-readable ISA schema)"
        )
    doc, isa = _child(root, "Document"), _child(root, "ISA")
    arch = _child(isa, "Architecture")
    arch_name = _text(_child(arch, "ArchitectureName"))
    if not arch_name:
        raise ContextFileError(f"{path}: ISA/Architecture/ArchitectureName is missing or empty")

    encodings: dict[str, Encoding] = {}
    for enc in _children(_child(isa, "Encodings"), "Encoding"):
        name = _text(_child(enc, "EncodingName"))
        if not name:
            raise ContextFileError(f"{path}: an <Encoding> has no <EncodingName>")
        fields = []
        for f in _children(_child(_child(enc, "MicrocodeFormat"), "BitMap"), "Field"):
            rng = _child(_child(f, "BitLayout"), "Range")
            fields.append(
                (
                    _text(_child(f, "FieldName")),
                    _int(_child(rng, "BitOffset")) or 0,
                    _int(_child(rng, "BitCount")) or 0,
                )
            )
        encodings[name] = Encoding(
            name, _int(_child(enc, "BitCount")), _text(_child(enc, "Description")), fields
        )

    instructions: list[Instruction] = []
    for ins in _children(_child(isa, "Instructions"), "Instruction"):
        name = _text(_child(ins, "InstructionName"))
        if not name:
            raise ContextFileError(f"{path}: an <Instruction> has no <InstructionName>")
        flags_el = _child(ins, "InstructionFlags")
        flags = {_local(c.tag): _bool(_text(c)) for c in (flags_el if flags_el is not None else [])}
        group_el = _child(ins, "FunctionalGroup")
        item = Instruction(
            name,
            _text(_child(ins, "Description")),
            _text(_child(group_el, "Name")),
            _text(_child(group_el, "Subgroup")),
            flags,
        )
        for form in _children(_child(ins, "InstructionEncodings"), "InstructionEncoding"):
            enc_name = _text(_child(form, "EncodingName"))
            if not enc_name:
                raise ContextFileError(
                    f"{path}: instruction {name} has an <InstructionEncoding> without <EncodingName>"
                )
            ops = []
            for op in _children(_child(form, "Operands"), "Operand"):
                ops.append(
                    Operand(
                        int(op.get("Order", "0") or 0),
                        _text(_child(op, "FieldName")),
                        _text(_child(op, "DataFormatName")),
                        _text(_child(op, "OperandType")),
                        _int(_child(op, "OperandSize")) or 0,
                        _bool(op.get("Input")),
                        _bool(op.get("Output")),
                        _bool(op.get("IsImplicit")),
                    )
                )
            item.forms.append(
                InstructionForm(
                    enc_name,
                    _int(_child(form, "Opcode")),
                    _text(_child(form, "EncodingCondition")),
                    sorted(ops, key=lambda o: o.order),
                )
            )
        instructions.append(item)

    formats = [
        (_text(_child(d, "DataFormatName")), _text(_child(d, "DataType")), _int(_child(d, "BitCount")))
        for d in _children(_child(isa, "DataFormats"), "DataFormat")
    ]
    operand_types = [
        (_text(_child(o, "OperandTypeName")), _text(_child(o, "Description")))
        for o in _children(_child(isa, "OperandTypes"), "OperandType")
    ]
    return IsaSpec(
        arch_name,
        _text(_child(arch, "ArchitectureId")),
        _text(_child(doc, "ReleaseDate")),
        _text(_child(doc, "SchemaVersion")),
        encodings,
        instructions,
        formats,
        operand_types,
    )


# ---- writing chapters ------------------------------------------------------------------------------


def family_of(architecture: str) -> str:
    """'AMD CDNA 4' -> 'cdna4', 'RDNA3' -> 'rdna3'."""
    slug = re.sub(r"[^a-z0-9]", "", architecture.lower())
    return slug.removeprefix("amd").removeprefix("instinct") or "amd"


def targets_for(family: str) -> list[str]:
    """Target profiles whose arch is the family's LLVM processor (cdna4 -> mi355x)."""
    from ksearch.target.profile import load_target

    arch = FAMILY_ARCH.get(family)
    return [] if arch is None else [t for t in known_targets() if load_target(t).arch == arch]


def _topics(names: list[str]) -> list[str]:
    found = []
    for name in names:
        for prefix, topic in PREFIX_TOPICS:
            if name.lower().startswith(prefix) and topic not in found:
                found.append(topic)
                break
    return ["isa_xml"] + found


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_.\-]", "_", name.lower()).strip("_.-") or "encoding"


def _front(title: str, targets: list[str], topics: list[str], source: str) -> str:
    meta = {"title": title, "target": targets, "topics": topics, "source": [source]}
    return (
        "---\n"
        + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=None, width=10_000)
        + "---\n"
    )


def _operand_rows(form: InstructionForm) -> list[str]:
    rows = ["| # | field | in/out | operand type | data format | bits |", "|---|---|---|---|---|---|"]
    for op in form.operands:
        way = "/".join(w for w, on in (("in", op.input), ("out", op.output)) if on) or "-"
        fld = op.field or ("(implicit)" if op.implicit else "-")
        rows.append(
            f"| {op.order} | {fld} | {way} | {op.type or '-'} | {op.data_format or '-'} | {op.size} |"
        )
    return rows


def ingest_amd_xml(xml_path: Path, out: Path | None = None, targets: list[str] | None = None) -> IngestReport:
    """Write `<out>/chapters/<family>-xml/*.md` and `<out>/manifest.json` from one AMD ISA XML file."""
    spec = parse_amd_isa_xml(xml_path)
    family = family_of(spec.architecture)
    tgts = targets or targets_for(family) or ["*"]
    out = Path(out) if out is not None else local_corpus_dir()
    folder = out / CHAPTERS / f"{family}-xml"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.md"):  # a re-ingest replaces the previous one
        old.unlink()
    when = f", released {spec.release_date}" if spec.release_date else ""
    source = (
        f"AMD machine-readable ISA specification (XML), {spec.architecture}{when}, file {Path(xml_path).name}"
    )

    by_encoding: dict[str, list[tuple[Instruction, InstructionForm]]] = {}
    for ins in spec.instructions:
        for form in ins.forms:
            by_encoding.setdefault(form.encoding, []).append((ins, form))

    written: list[str] = []
    for enc_name in sorted(by_encoding):
        members = sorted(by_encoding[enc_name], key=lambda pair: pair[0].name)
        enc = spec.encodings.get(enc_name)
        lines = [
            _front(
                f"{spec.architecture} {enc_name} instructions (AMD ISA XML)",
                tgts,
                _topics([i.name for i, _ in members]),
                source,
            )
        ]
        lines.append(
            f"Encoding {enc_name}"
            + (f", {enc.bits} bits" if enc and enc.bits else "")
            + f"; {len(members)} instructions. Generated by `ksearch isa ingest` from {Path(xml_path).name}."
        )
        if enc and enc.description:
            lines.append(f"\n{enc.description}")
        if enc and enc.fields:
            lines.append("\n## Encoding fields\n\n| field | bit offset | width |\n|---|---|---|")
            lines += [f"| {n} | {o} | {w} |" for n, o, w in sorted(enc.fields, key=lambda f: f[1])]
        for ins, form in members:
            lines.append(f"\n## {ins.name.lower()}\n")
            meta = [f"opcode {form.opcode}" if form.opcode is not None else "opcode ?"]
            if ins.group:
                meta.append(f"group {ins.group}" + (f"/{ins.subgroup}" if ins.subgroup else ""))
            if form.condition and form.condition.lower() != "default":
                meta.append(f"condition {form.condition}")
            meta += [k for k, v in ins.flags.items() if v]
            lines.append(f"{ins.name} in {enc_name}: " + ", ".join(meta) + ".")
            if ins.description:
                lines.append(f"\n{ins.description}")
            if form.operands:
                lines.append("\n" + "\n".join(_operand_rows(form)))
        cid = f"{family}-xml/{_slug(enc_name)}"
        (out / CHAPTERS / f"{cid}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(cid)

    index = [
        _front(f"{spec.architecture} ISA XML index", tgts, ["isa_xml"], source),
        f"{len(spec.instructions)} instructions in {len(by_encoding)} encodings "
        f"(schema {spec.schema_version or '?'}). Each encoding is a chapter; each instruction a section.",
        "\n## Encodings\n\n| chapter | encoding | bits | instructions |\n|---|---|---|---|",
    ]
    for enc_name in sorted(by_encoding):
        enc = spec.encodings.get(enc_name)
        index.append(
            f"| isa:{family}-xml/{_slug(enc_name)} | {enc_name} | {enc.bits if enc else '?'} | "
            f"{len(by_encoding[enc_name])} |"
        )
    if spec.data_formats:
        index.append("\n## Data formats\n\n| name | type | bits |\n|---|---|---|")
        index += [f"| {n} | {t} | {b if b is not None else '?'} |" for n, t, b in spec.data_formats]
    if spec.operand_types:
        index.append("\n## Operand types\n\n| name | description |\n|---|---|")
        index += [f"| {n} | {d[:120]} |" for n, d in spec.operand_types]
    (folder / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    written.insert(0, f"{family}-xml/index")
    write_manifest(out)
    return IngestReport(spec.architecture, family, tgts, out, written, len(spec.instructions))
