"""The skill library: every skill parses, fits its budget, links only to things that exist, and
selection ranks the right skills first for a task on a target."""

import re
from pathlib import Path

import pytest
from clitools import ksearch

from ksearch.context import (
    SKILL_BODY_BUDGET,
    ContextFileError,
    UnknownSkillError,
    count_tokens,
    get_skill,
    list_skills,
    load_skills,
    select_skills,
    show_skill,
)
from ksearch.context.markdown import references, split_front_matter
from ksearch.context.skills import LANGUAGES, REFERENCE_BUDGET, task_profile
from ksearch.context.tokens import is_exact
from ksearch.errors import TargetError
from ksearch.evidence.catalog import FailureClass
from ksearch.target.profile import list_targets

ROOT = Path(__file__).resolve().parents[1]
OP_FAMILIES = {"gemm", "attention", "moe", "norm", "reduction", "elementwise", "*"}


@pytest.fixture(scope="module")
def skills():
    return load_skills()


def test_every_skill_parses_with_valid_fields(skills):
    targets = set(list_targets()) | {"*"}
    assert len(skills) >= 14
    layers = {s.meta.layer for s in skills.values()}
    assert layers == {"entry", "harness", "hardware", "language", "op"}
    for s in skills.values():
        assert set(s.meta.targets) <= targets, s.name
        assert set(s.meta.op_families) <= OP_FAMILIES, s.name
        assert set(s.meta.languages) <= set(LANGUAGES) | {"*"}, s.name
        assert s.meta.description and s.meta.when_to_use
        assert s.body.strip(), s.name


def test_every_target_has_a_hardware_skill_and_the_layers_are_covered(skills):
    for target in list_targets():
        assert [s for s in skills.values() if s.meta.layer == "hardware" and target in s.meta.targets], target
    langs = {lang for s in skills.values() if s.meta.layer == "language" for lang in s.meta.languages}
    assert langs == set(LANGUAGES)
    ops = {f for s in skills.values() if s.meta.layer == "op" for f in s.meta.op_families}
    assert {"gemm", "attention", "moe", "norm", "reduction"} <= ops


@pytest.mark.skipif(
    not is_exact(), reason="budgets are defined in real (o200k) tokens; bpe-openai not installed"
)
def test_every_skill_body_and_reference_fits_its_budget(skills):
    for s in skills.values():
        assert s.tokens <= SKILL_BODY_BUDGET, f"{s.name}: {s.tokens} tokens > {SKILL_BODY_BUDGET}"
        for ref in s.references():
            n = count_tokens(ref.read_text())
            assert n <= REFERENCE_BUDGET, f"{s.name}/{ref.name}: {n} tokens"


def test_every_link_of_every_skill_resolves(skills, corpus):
    """Walk SKILL.md bodies, reference files and the front-matter chapter/see_also lists."""
    checked = 0
    for s in skills.values():
        for cid in s.meta.chapters:
            assert corpus.exists(cid), f"{s.name}: front matter chapter {cid} does not exist"
        for other in s.meta.see_also:
            assert other in skills, f"{s.name}: see_also {other} is not a skill"
        for path in [s.path, *s.references()]:
            text = path.read_text()
            refs = references(text)
            for ref in refs["isa"]:
                assert corpus.exists(ref), f"{path}: isa:{ref} does not exist"
                checked += 1
            for ref in refs["skill"]:
                name, _, rest = ref.partition("/")
                assert name in skills, f"{path}: skill:{ref} is not a skill"
                if rest:
                    assert (skills[name].folder / rest).is_file(), f"{path}: skill:{ref} has no such file"
                checked += 1
            for link in refs["file"]:
                assert (path.parent / link.split("#")[0]).is_file(), f"{path}: link {link} is broken"
                checked += 1
    assert checked > 50  # the walker really walked


def test_harness_skill_names_exactly_the_catalog_reward_hack_classes(skills):
    hs = skills["harness-rules"]
    texts = [hs.path.read_text(), *(p.read_text() for p in hs.references())]
    named = {m for t in texts for m in re.findall(r"reward_hack:[a-z_]+", t)}
    catalog = {f.value for f in FailureClass if f.is_reward_hack}
    assert named <= catalog, f"not in the catalog: {named - catalog}"
    reference = hs.references()[0].read_text()
    missing = {c for c in catalog if c not in reference}
    assert not missing, f"reference.md does not cover {missing}"


def test_select_matmul_on_mi355x_picks_cdna4_gemm_triton_first():
    sel = select_skills("matmul", "mi355x")
    names = [p.name for p in sel.picked]
    assert names[:3] == ["hw-cdna4-mi355x", "op-gemm", "lang-triton"]
    assert sel.task.op_family == "gemm" and sel.task.source == "task"
    assert count_tokens(sel.text) <= sel.budget
    assert "hw-blackwell-b200" not in names and "hw-hopper-h100" not in names


def test_cli_select_matmul_on_mi355x_lists_cdna4_gemm_triton_first():
    proc = ksearch("skills", "select", "--task", "matmul", "--target", "mi355x")
    assert proc.returncode == 0, proc.stderr
    ranked = re.findall(r"^\d+\. (\S+) ", proc.stdout, flags=re.MULTILINE)
    assert ranked[:3] == ["hw-cdna4-mi355x", "op-gemm", "lang-triton"]


@pytest.mark.parametrize("target", ["b200", "h100", "h200", "mi300x", "mi355x"])
def test_each_target_gets_its_own_hardware_skill_first(target):
    sel = select_skills("matmul", target)
    first = get_skill(sel.picked[0].name)
    assert first.meta.layer == "hardware" and target in first.meta.targets
    if target in ("b200", "h100", "h200"):
        assert "lang-hip" not in [p.name for p in sel.picked + sel.omitted]


def test_budget_limits_the_selection():
    big = select_skills("gqa_decode_attention", "b200", budget=8000)
    small = select_skills("gqa_decode_attention", "b200", budget=1200)
    assert len(small.picked) < len(big.picked)
    assert count_tokens(small.text) <= 1200
    assert [p.name for p in small.picked] == [p.name for p in big.picked][: len(small.picked)]
    assert small.omitted and {p.name for p in small.omitted} <= {p.name for p in big.picked + big.omitted}


def test_free_text_tasks_read_op_family_and_dtype():
    t = task_profile("mxfp4 gemm for a llama MLP")
    assert (t.op_family, t.dtypes, t.source) == ("gemm", ("mxfp4",), "text")
    names = [p.name for p in select_skills("mxfp4 gemm", "mi355x").picked]
    assert names[:3] == ["hw-cdna4-mi355x", "op-gemm", "op-mxfp4-nvfp4-gemm"]
    assert task_profile("fused rmsnorm").op_family == "norm"


def test_show_skill_and_reference_file():
    text = show_skill("hw-cdna4-mi355x")
    assert text.startswith("# skill: hw-cdna4-mi355x") and "160 KiB" in text
    ref = show_skill("hw-cdna4-mi355x/reference.md")
    assert "tuning checklist" in ref
    with pytest.raises(UnknownSkillError, match="did you mean hw-cdna4-mi355x"):
        get_skill("hw-cdna4-mi35x")
    with pytest.raises(UnknownSkillError, match="no reference file"):
        show_skill("op-gemm/nothing.md")
    assert [s.meta.layer for s in list_skills()][0] == "entry"


def test_unknown_target_and_unknown_skill_are_one_line_errors():
    with pytest.raises(TargetError, match="known targets"):
        select_skills("matmul", "mi400")
    proc = ksearch("skills", "show", "no-such-skill")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown skill")


def test_a_malformed_skill_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "SKILL.md").write_text("---\nname: broken\ndescription: x\nlayer: wizard\n---\nbody\n")
    with pytest.raises(ContextFileError, match="broken/SKILL.md: front matter field"):
        load_skills(tmp_path)
    (bad / "SKILL.md").write_text("no front matter\n")
    with pytest.raises(ContextFileError, match="no YAML front matter"):
        load_skills(tmp_path)


def test_front_matter_splitter_keeps_the_body(tmp_path):
    meta, body = split_front_matter("---\na: 1\n---\n\nhello\n", tmp_path / "x.md")
    assert meta == {"a": 1} and body == "hello\n"
