"""The ISA corpus: packets under a budget, addressable ids, links, manifest, rules vs profiles,
search, AMD XML ingest, and the tokenizer fallback."""

import json
import math
import re
import shutil
import sys
from pathlib import Path

import pytest
from clitools import ksearch

from ksearch.context import (
    BudgetError,
    ContextFileError,
    UnknownChapterError,
    UnknownTopicError,
    build_packet,
    check_rules,
    count_tokens,
    ingest_amd_xml,
    load_corpus,
    load_rules,
    load_topics,
    manifest_drift,
    parse_amd_isa_xml,
    tokens,
)
from ksearch.context.corpus import read_manifest
from ksearch.context.markdown import references
from ksearch.context.rules import rules_path
from ksearch.target.profile import list_targets

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "isa_corpus"
FIXTURE = ROOT / "tests" / "fixtures" / "isa_amd_cdna4_sample.xml"
REQUIRED_TOPICS = {
    "mfma",
    "mfma_scale",
    "lds_tiling",
    "ds_ops",
    "waits",
    "wavefront64",
    "vgpr_agpr",
    "tcgen05",
    "tmem",
    "tma",
    "wgmma",
    "mbarrier",
    "smem_banks",
    "register_file",
    "occupancy",
    "fp4_formats",
}
ID_IN_PACKET = re.compile(r"\[([a-z0-9][a-z0-9_.\-/]*/[a-z0-9_.\-]+(?:#[a-z0-9_\-]+)?)\]")


@pytest.fixture(scope="module")
def topics():
    return load_topics()


# ---- acceptance: packets through the CLI -------------------------------------------------------------


@pytest.mark.parametrize(
    "topic,target,needles",
    [
        ("mfma_scale", "mi355x", ["v_mfma_scale_f32_32x32x64_f8f6f4", "E8M0"]),
        ("tcgen05", "b200", ["TMEM", "tcgen05.mma"]),
    ],
)
def test_cli_packet_fits_the_budget_names_the_facts_and_every_id_opens(topic, target, needles, corpus):
    proc = ksearch("isa", "packet", "--topic", topic, "--target", target, "--budget", "1500")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert count_tokens(text) <= 1500
    for n in needles:
        assert n in text
    ids = set(ID_IN_PACKET.findall(text))
    assert ids, "a packet names the ids it drew from"
    for i in ids:
        assert corpus.exists(i), i
    shown = ksearch("isa", "show", sorted(ids)[0])  # and through the CLI, one of them
    assert shown.returncode == 0 and shown.stdout.strip()


def test_every_topic_packet_fits_every_budget_on_every_target(corpus, topics):
    for name in topics:
        for target in list_targets():
            for budget in (400, 1500, 4000):
                p = build_packet(name, target, budget, corpus=corpus, topics=topics)
                assert p.tokens == count_tokens(p.text) <= budget, (name, target, budget)
                for i in set(ID_IN_PACKET.findall(p.text)):
                    assert corpus.exists(i), (name, target, i)
                # nothing for another target sneaks in
                for item in p.included:
                    if item.kind != "facts":
                        assert corpus.get(item.id).applies_to(target), (name, target, item.id)


def test_a_bigger_budget_gives_more_and_the_whole_primary_chapter(corpus, topics):
    small = build_packet("tcgen05", "b200", 600, corpus=corpus, topics=topics)
    big = build_packet("tcgen05", "b200", 5000, corpus=corpus, topics=topics)
    assert big.tokens > small.tokens
    assert "blackwell/tcgen05" in [i.id for i in big.included if i.kind == "chapter"]
    assert "blackwell/tcgen05" in small.omitted  # not included whole, so listed to ask for


def test_packet_errors_are_one_line(corpus, topics):
    with pytest.raises(BudgetError, match="too small"):
        build_packet("mfma", "mi355x", 10, corpus=corpus, topics=topics)
    with pytest.raises(UnknownTopicError, match="did you mean mfma_scale"):
        build_packet("mfma_scal", "mi355x", 1500, corpus=corpus, topics=topics)
    proc = ksearch("isa", "packet", "--topic", "tcgen05", "--target", "b300")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: unknown target 'b300'")
    proc = ksearch("isa", "show", "cdna4/mfma-scal")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "did you mean cdna4/mfma-scale" in lines[0]


# ---- chapters, topics, links, manifest -------------------------------------------------------------


def test_chapters_are_addressable_whole_and_by_section(corpus):
    text = corpus.show("cdna4/lds#capacity-and-banks")
    assert "[id: cdna4/lds#capacity-and-banks]" in text and "64 banks" in text and "## Occupancy" not in text
    assert "160 KiB" in corpus.show("cdna4/lds")
    with pytest.raises(UnknownChapterError, match="no section"):
        corpus.show("cdna4/lds#no-such-section")
    for c in corpus.chapters.values():
        assert c.sources and c.targets, c.id
        for s in c.sections():
            if s.slug:
                assert corpus.exists(f"{c.id}#{s.slug}")


def test_topics_cover_the_required_set_and_point_at_real_chapters(corpus, topics):
    assert REQUIRED_TOPICS <= set(topics)
    for name, t in topics.items():
        assert t.facts, name
        for cid in t.chapters:
            assert cid in corpus.chapters, (name, cid)
        for f in t.facts:
            assert f.source.strip(), (name, f.text)
            assert f.chapter is None or f.chapter in corpus.chapters, (name, f.chapter)
            assert set(f.targets) <= set(list_targets()) | {"*"}, (name, f.targets)
    declared = {t for c in corpus.chapters.values() for t in c.topics}
    assert declared <= set(topics), declared - set(topics)


def test_every_link_in_chapters_resolves(corpus):
    from ksearch.context import load_skills

    skills = load_skills()
    n = 0
    for c in corpus.chapters.values():
        refs = references(c.body)
        for ref in refs["isa"]:
            assert corpus.exists(ref), f"{c.id}: isa:{ref}"
            n += 1
        for ref in refs["skill"]:
            assert ref.split("/")[0] in skills, f"{c.id}: skill:{ref}"
    assert n > 20


def test_manifest_is_current_and_complete(corpus):
    assert manifest_drift(CORPUS) == []
    manifest = read_manifest(CORPUS)
    assert {e["id"] for e in manifest["chapters"]} == set(corpus.chapters)
    for e in manifest["chapters"]:
        assert {"id", "title", "target", "topics", "tokens", "source"} <= set(e)
        assert e["tokens"] > 0 and e["source"]


@pytest.mark.parametrize(
    "front,problem",
    [
        (
            "title: New\ntarget: [mi355x]\ntopics: [mfma]\nsource: [test]\nauthor: me",
            "unknown field 'author'; remove it or fix its spelling",
        ),
        ("title: '  '\ntarget: [mi355x]\nsource: [test]", "field 'title'"),
        ("title: New\ntarget: [mi355x]\nsource: []", "field 'source'"),
        ("title: New\ntarget: [b300]\nsource: test", "'target' must list target names"),
        ("title: New\ntarget: mi355x\nsource: [test, 3]", "field 'source.1'"),
    ],
)
def test_a_malformed_chapter_is_a_one_line_error_naming_the_file(tmp_path, front, problem):
    copy = tmp_path / "isa_corpus"
    shutil.copytree(CORPUS, copy, ignore=shutil.ignore_patterns("local"))
    (copy / "chapters" / "cdna4" / "new.md").write_text(f"---\n{front}\n---\nbody\n")
    with pytest.raises(ContextFileError, match=re.escape("new.md: ") + ".*" + re.escape(problem)) as err:
        load_corpus(copy)
    assert "\n" not in str(err.value)


def test_a_chapter_front_matter_takes_a_single_string_for_a_list(tmp_path):
    copy = tmp_path / "isa_corpus"
    shutil.copytree(CORPUS, copy, ignore=shutil.ignore_patterns("local"))
    (copy / "chapters" / "cdna4" / "new.md").write_text(
        "---\ntitle: ' New '\ntarget: mi355x\nsource: doc\n---\nx\n"
    )
    new = load_corpus(copy).get("cdna4/new")
    assert (new.title, new.targets, new.topics, new.sources) == ("New", ("mi355x",), (), ("doc",))


def test_cli_lists_the_chapters_of_a_topic_on_a_target(corpus):
    proc = ksearch("isa", "list", "--topic", "MFMA-scale", "--target", "mi355x", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    expected = [c.id for c in corpus.select("mi355x", "mfma_scale")]
    assert [r["id"] for r in rows] == expected and expected
    manifest = {e["id"]: e for e in read_manifest(CORPUS)["chapters"]}
    for r in rows:  # the manifest's entries (token counts aside: they depend on the tokenizer installed)
        assert r["tokens"] > 0 and {**r, "tokens": 0} == {**manifest[r["id"]], "tokens": 0}
    proc = ksearch("isa", "list", "--topic", "mfma_scal")
    assert proc.returncode != 0 and "did you mean mfma_scale" in proc.stderr


def test_a_stale_manifest_is_reported(tmp_path):
    copy = tmp_path / "isa_corpus"
    shutil.copytree(CORPUS, copy, ignore=shutil.ignore_patterns("local"))
    extra = copy / "chapters" / "cdna4" / "new.md"
    extra.write_text('---\ntitle: New\ntarget: [mi355x]\ntopics: [mfma]\nsource: ["test"]\n---\nbody\n')
    assert manifest_drift(copy) == ["cdna4/new: missing from the manifest"]


# ---- rules vs profiles -----------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["b200", "h100", "h200", "mi300x", "mi355x"])
def test_rules_agree_with_the_target_profile(target):
    assert rules_path(target).is_file()
    assert check_rules(target) == []
    rules = load_rules(target)
    shared = [k for k, lim in rules.limits.items() if lim.profile]
    assert len(shared) >= 8, "the rules file restates the profile's hard limits"
    for name, lim in rules.limits.items():
        assert lim.source.strip(), name


def test_a_rules_file_that_disagrees_on_an_allocation_granule_is_caught(tmp_path):
    copy = tmp_path / "isa_corpus"
    shutil.copytree(CORPUS, copy, ignore=shutil.ignore_patterns("local"))
    path = copy / "rules" / "mi300x.yaml"
    path.write_text(
        path.read_text().replace("vgpr_alloc_granule: {value: 8,", "vgpr_alloc_granule: {value: 4,")
    )
    problems = check_rules("mi300x", copy)
    assert [(p.limit, p.field, p.profile_value) for p in problems] == [
        ("vgpr_alloc_granule", "registers.allocation_unit", 8)
    ]
    proc = ksearch("isa", "rules", "mi300x", env={"KSEARCH_ISA_CORPUS": str(copy)})
    assert proc.returncode == 1 and "MISMATCH vgpr_alloc_granule" in proc.stdout
    assert "profile field registers.allocation_unit says 8" in proc.stdout


def test_a_rules_file_that_disagrees_is_caught(tmp_path):
    copy = tmp_path / "isa_corpus"
    shutil.copytree(CORPUS, copy, ignore=shutil.ignore_patterns("local"))
    path = copy / "rules" / "mi355x.yaml"
    path.write_text(
        path.read_text().replace("lds_per_workgroup_kib: {value: 160", "lds_per_workgroup_kib: {value: 64")
    )
    problems = check_rules("mi355x", copy)
    assert [p.limit for p in problems] == ["lds_per_workgroup_kib"]
    assert "shared_memory.max_per_block_kib" in str(problems[0])
    proc = ksearch("isa", "rules", "mi355x", env={"KSEARCH_ISA_CORPUS": str(copy)})
    assert proc.returncode == 1 and "MISMATCH lds_per_workgroup_kib" in proc.stdout


def test_hardware_numbers_the_acceptance_pins():
    assert load_rules("mi355x").limits["lds_per_cu_kib"].value == 160
    assert load_rules("b200").limits["tensor_memory_kib"].value == 256
    assert (
        load_rules("b200").limits["tmem_lanes"].value * load_rules("b200").limits["tmem_columns"].value * 4
        == 256 * 1024
    )
    for t in ("b200", "h100", "h200"):
        limits = load_rules(t).limits
        assert (limits["smem_per_sm_kib"].value, limits["smem_per_block_kib"].value) == (228, 227)


# ---- search ----------------------------------------------------------------------------------------


def test_search_finds_mnemonics_and_respects_the_target(corpus):
    hits = corpus.search("ds_read_b64_tr_b16")
    assert hits and hits[0].id.startswith("cdna4/ds-ops")
    assert all(corpus.exists(h.id) for h in hits)
    assert not [h for h in corpus.search("mbarrier expect_tx", target="mi355x")]
    assert corpus.search("tensor memory lanes columns", target="b200")[0].id.startswith("blackwell/tmem")
    assert corpus.search("zzzz qqqq") == []


# ---- AMD ISA XML ingest ----------------------------------------------------------------------------


def test_ingest_writes_per_encoding_chapters_that_load_and_join_packets(tmp_path):
    base = tmp_path / "isa_corpus"
    shutil.copytree(CORPUS, base, ignore=shutil.ignore_patterns("local"))
    report = ingest_amd_xml(FIXTURE, base / "local")
    assert report.family == "cdna4" and report.targets == ["mi355x"] and report.instructions == 5
    assert report.chapters == [
        "cdna4-xml/index",
        "cdna4-xml/enc_ds",
        "cdna4-xml/enc_sopp",
        "cdna4-xml/enc_vop3p",
    ]
    assert (base / "local" / "manifest.json").is_file()
    corpus = load_corpus(base)
    sec = corpus.show("cdna4-xml/enc_vop3p#v_mfma_scale_f32_32x32x64_f8f6f4")
    assert "FMT_NUM_E8M0" in sec and "SCALE_SRC0" in sec and "opcode 46" in sec
    ds = corpus.show("cdna4-xml/enc_ds#ds_read_b64_tr_b16")
    assert "(implicit)" in ds and "OPR_M0" in ds
    assert corpus.get("cdna4-xml/enc_vop3p").topics == ("isa_xml", "mfma", "mfma_scale")
    assert corpus.search("v_mfma_scale_f32_32x32x64_f8f6f4 E8M0")[0].id.startswith("cdna4-xml/enc_vop3p")
    packet = build_packet("mfma_scale", "mi355x", 6000, corpus=corpus, topics=load_topics(base))
    assert "cdna4-xml/enc_vop3p" in {i.id.split("#")[0] for i in packet.included} | set(packet.omitted)
    assert not [c for c in load_corpus(base).select("b200") if c.id.startswith("cdna4-xml")]


def test_cli_ingest(tmp_path):
    proc = ksearch("isa", "ingest", "--amd-xml", str(FIXTURE), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "5 instructions -> 4 chapters" in proc.stdout
    assert (tmp_path / "out" / "chapters" / "cdna4-xml" / "enc_sopp.md").is_file()


def test_ingest_rejects_what_is_not_the_schema(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text(
        "<Spec><ISA><Architecture><ArchitectureName>X</ArchitectureName></Architecture>"
        "<Instructions><Instruction><Description>no name</Description></Instruction></Instructions>"
        "</ISA></Spec>"
    )
    with pytest.raises(ContextFileError, match="has no <InstructionName>"):
        parse_amd_isa_xml(bad)
    bad.write_text("<NotSpec/>")
    with pytest.raises(ContextFileError, match="expected <Spec>"):
        parse_amd_isa_xml(bad)
    bad.write_text("<Spec><unclosed>")
    with pytest.raises(ContextFileError, match="not well-formed"):
        parse_amd_isa_xml(bad)
    with pytest.raises(ContextFileError, match="does not exist"):
        parse_amd_isa_xml(tmp_path / "missing.xml")


# ---- tokenizer -------------------------------------------------------------------------------------


def test_tokenizer_is_real_here_and_falls_back_offline(monkeypatch):
    pytest.importorskip("bpe_openai")
    assert tokens.tokenizer_name() == "bpe-openai:o200k_base"
    assert count_tokens("hello world") == 2
    tokens._encoder.cache_clear()
    try:
        monkeypatch.setitem(sys.modules, "bpe_openai", None)  # as on a GPU worker without it
        assert tokens.tokenizer_name() == "estimate:chars/3"
        assert count_tokens("x" * 10) == math.ceil(10 / 3)
        assert not tokens.is_exact()
    finally:
        tokens._encoder.cache_clear()


def _texts(corpus) -> list[str]:
    """Chapters, skills and our own sources: prose, markdown and code."""
    from ksearch.context import list_skills

    return (
        [c.render() for c in corpus.chapters.values()]
        + [s.render() for s in list_skills()]
        + [p.read_text() for p in sorted((ROOT / "ksearch").rglob("*.py"))]
    )


def test_the_tokenizer_splits_after_a_newline_before_anything_but_whitespace_or_slash(corpus):
    # what JoinedTokens and the chunked encode rely on: such a text counts as the sum of its sides
    pytest.importorskip("bpe_openai")
    texts = _texts(corpus)
    for text in texts:
        cuts = [0] + [
            i + 1 for i in range(len(text) - 1) if text[i] == "\n" and tokens._splits_before(text[i + 1])
        ]
        pieces = [text[a:b] for a, b in zip(cuts, cuts[1:] + [len(text)])]
        assert sum(map(count_tokens, pieces)) == count_tokens(text)
    texts = [t for t in texts if tokens._splits_before(t[:1])]
    big = "\n".join(texts)  # over bpe-openai's 1M characters and 200k tokens for one call: encoded in chunks
    assert len(big) > 1_000_000
    assert count_tokens(big) == sum(count_tokens(t + "\n") for t in texts[:-1]) + count_tokens(texts[-1])


@pytest.mark.parametrize("exact", [True, False])
def test_joined_tokens_count_as_the_joined_text(corpus, exact, monkeypatch):
    if not exact:
        monkeypatch.setattr(tokens, "_encoder", lambda: (tokens.ESTIMATE, None))
    parts = [c.render() for c in corpus.chapters.values()]
    count = tokens.JoinedTokens()
    for k in range(len(parts) + 1):
        assert count(parts[:k]) == count_tokens("\n".join(parts[:k]))
    odd = [parts[0], "  indented", "/path", "", parts[1]]  # not split after the newline: counted whole
    assert count(odd) == count_tokens("\n".join(odd))


@pytest.mark.parametrize("exact", [True, False])
def test_fit_tokens_cuts_on_token_boundaries_within_the_budget(corpus, exact, monkeypatch):
    if not exact:
        monkeypatch.setattr(tokens, "_encoder", lambda: (tokens.ESTIMATE, None))
    text = corpus.chapters["cdna4/mfma"].render() + "ünïcødé ✓ 漢字 " * 50
    n = count_tokens(text)
    assert tokens.fit_tokens(text, n) == text and tokens.fit_tokens(text, 0) == ""
    for budget in (1, 7, 50, 333, n - 1):
        for marker in ("", "\n[... cut]"):
            cut = tokens.fit_tokens(text, budget, marker)
            if budget < count_tokens(marker):
                assert cut == ""  # not even the marker fits
                continue
            assert cut.endswith(marker) and text.startswith(cut[: len(cut) - len(marker)])
            assert budget - 3 <= count_tokens(cut) <= budget  # whole tokens: at most a split character short


def test_fit_lines_keeps_the_most_leading_lines_that_fit(corpus):
    lines = corpus.chapters["cdna4/mfma"].render().split("\n")
    total = count_tokens("\n".join(lines))
    for budget in (0, 1, 40, 400, total - 1, total):
        n = tokens.fit_lines(lines, budget)
        assert count_tokens("\n".join(lines[:n])) <= budget
        assert n == len(lines) or count_tokens("\n".join(lines[: n + 1])) > budget
    assert tokens.fit_lines(lines, total) == len(lines)
