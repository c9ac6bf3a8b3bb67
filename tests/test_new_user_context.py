"""What a new user hit with `ksearch isa` and `ksearch skills`: a filtered search that found more
than the unfiltered one, plurals that did not match, unknown names answered as if fine, files that
are not UTF-8, and output that did not read at 80 columns."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ksearch.context import (
    Chapter,
    ContextError,
    ContextFileError,
    Corpus,
    load_corpus,
    load_skills,
    select_skills,
    show_skill,
)
from ksearch.errors import NotUtf8Error, TaskError
from ksearch.target.profile import list_targets

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "isa_corpus"
SKILLS = ROOT / "skills"
QUERIES = [
    "bank conflict",
    "conflict",
    "banks",
    "tensor memory lanes columns",
    "mbarrier expect_tx",
    "wave64 lds",
]
HIT_ID = re.compile(r"^\[([^\]]+)\]", re.MULTILINE)
MORE = re.compile(r"^\((\d+) more sections? match", re.MULTILINE)


def ksearch(*args, env=None, columns=80):
    return subprocess.run(
        [sys.executable, "-m", "ksearch", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": str(columns), **(env or {})},
        timeout=120,
    )


def one_error_line(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


# ---- 1. search: the unfiltered result holds every filtered one; plurals match ----------------------


@pytest.mark.parametrize("query", QUERIES)
def test_unfiltered_search_contains_every_filtered_search(corpus, query):
    everything = [h.id for h in corpus.search(query, limit=None)]
    assert everything, query
    for target in list_targets():
        filtered = [h.id for h in corpus.search(query, target, limit=None)]
        # a subset, in the same order: the target only drops other targets' sections
        assert filtered == [i for i in everything if i in set(filtered)], (query, target)
        # and the default limit lists the top of that same order
        assert [h.id for h in corpus.search(query, target)] == filtered[:10]


def test_search_conflict_finds_the_cdna4_conflicts_section(corpus):
    for query in ("conflict", "conflicts", "bank conflict", "banks conflict"):
        assert "cdna4/lds#conflicts" in [h.id for h in corpus.search(query, limit=None)], query
        assert "cdna4/lds#conflicts" in [h.id for h in corpus.search(query, "mi355x")], query
    assert [h.id for h in corpus.search("bank", limit=None)] == [
        h.id for h in corpus.search("banks", limit=None)
    ]


def _one_chapter_corpus(body: str) -> Corpus:
    chapter = Chapter("test/words", "Words", ("*",), (), ("test",), body, Path("words.md"))
    return Corpus([], {chapter.id: chapter})


@pytest.mark.parametrize(
    "singular, plural",
    [
        ("conflict", "conflicts"),
        ("bank", "banks"),
        ("entry", "entries"),
        ("cache", "caches"),
        ("match", "matches"),
        ("address", "addresses"),
        ("use", "uses"),
    ],
)
def test_search_joins_singular_and_plural(singular, plural):
    """FTS5's Porter stemmer: either form finds a section holding the other."""
    for word, other in ((singular, plural), (plural, singular)):
        corpus = _one_chapter_corpus(f"## Section\n\nThis line holds {word} and nothing else.\n")
        hits = corpus.search(other)
        assert [h.id for h in hits] == ["test/words#section"], (word, other)
        assert hits[0].line == f"This line holds {word} and nothing else."


def test_search_keeps_a_mnemonic_one_phrase(corpus):
    """`_` splits FTS5 tokens, so a mnemonic is a phrase of adjacent tokens: its section matches,
    and one holding the same tokens apart does not."""
    hits = corpus.search("v_mfma_scale_f32")
    assert [h.id for h in hits] == ["cdna4/mfma-scale#the-instructions"]
    assert "v_mfma_scale_f32_16x16x128_f8f6f4" in hits[0].line
    apart = _one_chapter_corpus(
        "## Apart\n\nscale v mfma f32\n\n## Together\n\nsee V_MFMA_SCALE_F32_16X16.\n"
    )
    assert [h.id for h in apart.search("v_mfma_scale_f32")] == ["test/words#together"]


def test_search_ranks_more_query_words_first_and_shows_the_line_holding_most():
    body = (
        "## One\n\nbanks, banks, banks, banks everywhere.\n\n"
        "## Two\n\nA first line on banks.\nThe bank conflicts line.\nA conflict alone.\n"
    )
    hits = _one_chapter_corpus(body).search("bank conflict")
    assert [(h.id, h.line) for h in hits] == [
        ("test/words#two", "The bank conflicts line."),
        ("test/words#one", "banks, banks, banks, banks everywhere."),
    ]
    long = _one_chapter_corpus("## Long\n\n" + "conflict " * 40 + "\n").search("conflict")[0].line
    assert len(long) <= 160 and long.endswith("conflict ...")


def test_cli_search_lists_a_superset_or_says_how_many_more():
    """What `isa search` prints without --target covers what it prints with any target: each
    filtered hit is listed, or the '(N more sections match ...)' line counts it."""
    unfiltered = ksearch("isa", "search", "bank conflict")
    assert unfiltered.returncode == 0, unfiltered.stderr
    listed = HIT_ID.findall(unfiltered.stdout)
    more = MORE.search(unfiltered.stdout)
    every = [h.id for h in load_corpus().search("bank conflict", limit=None)]
    assert len(listed) + (int(more.group(1)) if more else 0) == len(every)
    for target in ("mi355x", "mi300x", "b200"):
        filtered = ksearch("isa", "search", "bank conflict", "--target", target)
        assert filtered.returncode == 0, filtered.stderr
        ids = HIT_ID.findall(filtered.stdout)
        assert set(ids) <= set(every)
        assert more or set(ids) <= set(listed), target
    assert "cdna4/lds#conflicts" in listed

    short = ksearch("isa", "search", "bank conflict", "--limit", "2")
    assert HIT_ID.findall(short.stdout) == every[:2]
    counted = MORE.search(short.stdout)
    assert counted and int(counted.group(1)) == len(every) - 2
    assert f"--limit {len(every)}" in short.stdout


# ---- 2. unknown names: one error line, exit 2 ------------------------------------------------------


def test_select_rejects_an_unknown_task_like_run_does():
    with pytest.raises(TaskError, match=r"unknown task 'nosuch'.*built-in tasks: .*matmul"):
        select_skills("nosuch", "mi355x", strict=True)
    with pytest.raises(TaskError, match="did you mean matmul"):
        select_skills("matmu", "mi355x", strict=True)
    with pytest.raises(TaskError, match="does not exist"):
        select_skills("./no/such/task.yaml", "mi355x", strict=True)
    # a built-in task, free text naming an op family or dtype, and a task path all still select
    assert select_skills("matmul", "mi355x", strict=True).task.source == "task"
    assert select_skills("mxfp4 gemm", "mi355x", strict=True).task.op_family == "gemm"
    assert (
        select_skills(str(ROOT / "configs" / "tasks" / "softmax"), "h100", strict=True).task.source == "task"
    )
    # the prompt builder passes any task's name and keeps its lenient default
    assert select_skills("nosuch", "mi355x").picked


def test_select_rejects_a_task_file_that_does_not_load(tmp_path):
    bad = tmp_path / "task.yaml"
    bad.write_text("name: broken\n")
    with pytest.raises(TaskError, match="task file"):
        select_skills(str(bad), "mi355x", strict=True)


@pytest.mark.parametrize(
    "args, start",
    [
        (["skills", "select", "--task", "nosuch", "--target", "mi355x"], "error: unknown task 'nosuch'"),
        (["skills", "select", "--task", "matmul", "--target", "nosuch"], "error: unknown target"),
        (["skills", "show", "nosuch"], "error: unknown skill"),
        (["isa", "list", "--target", "nosuch"], "error: unknown target"),
        (["isa", "list", "--topic", "nosuch"], "error: unknown ISA topic"),
        (["isa", "show", "cdna4/nosuch"], "error: unknown ISA chapter"),
        (["isa", "show", "cdna4/lds#nosuch"], "error: chapter 'cdna4/lds' has no section"),
        (["isa", "search", "bank", "--target", "nosuch"], "error: unknown target"),
        (["isa", "search", "bank", "--limit", "0"], "error: --limit must be at least 1"),
        (["isa", "packet", "--topic", "nosuch"], "error: unknown ISA topic"),
        (["isa", "rules", "nosuch"], "error: unknown target"),
    ],
)
def test_unknown_names_are_one_error_line_and_exit_2(args, start):
    assert one_error_line(ksearch(*args)).startswith(start)


# ---- 4. files that are not UTF-8 ---------------------------------------------------------------------


def test_a_skill_file_that_is_not_utf8_is_named(tmp_path):
    root = tmp_path / "skills"
    shutil.copytree(SKILLS, root)
    path = root / "op-gemm" / "SKILL.md"
    path.write_bytes(path.read_bytes().replace(b"GEMM", b"GEMM \xe9", 1))
    with pytest.raises(NotUtf8Error, match=r"op-gemm/SKILL.md is not UTF-8") as info:
        load_skills(root)
    assert isinstance(info.value, ContextError)  # the prompt builder degrades instead of stopping
    line = one_error_line(ksearch("skills", "list", env={"KSEARCH_SKILLS": str(root)}))
    assert "op-gemm/SKILL.md is not UTF-8" in line and "line" in line

    path.write_text("---\nname: op-gemm\n---\n")  # the skill loads again; its reference file does not
    shutil.rmtree(root / "op-gemm")
    (root / "op-moe" / "notes.md").write_bytes(b"caf\xe9\n")
    with pytest.raises(NotUtf8Error, match="notes.md is not UTF-8"):
        show_skill("op-moe/notes.md", load_skills(root))


def test_a_chapter_that_is_not_utf8_is_named(tmp_path):
    root = tmp_path / "isa_corpus"
    shutil.copytree(CORPUS, root, ignore=shutil.ignore_patterns("local"))
    path = root / "chapters" / "cdna4" / "lds.md"
    path.write_bytes(path.read_bytes() + b"\n\xff\xfe\n")
    with pytest.raises(ContextFileError, match=r"cdna4/lds.md is not UTF-8"):
        load_corpus(root)
    line = one_error_line(ksearch("isa", "search", "bank", env={"KSEARCH_ISA_CORPUS": str(root)}))
    assert "lds.md is not UTF-8" in line


# ---- output at 80 columns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["skills", "list"],
        ["skills", "select", "--task", "matmul", "--target", "mi355x"],
        ["isa", "list"],
        ["isa", "topics"],
        ["isa", "search", "bank conflict"],
        ["isa", "search", "mbarrier expect_tx", "--limit", "3"],
    ],
)
def test_listings_fit_80_columns(args):
    proc = ksearch(*args)
    assert proc.returncode == 0, proc.stderr
    long = [ln for ln in proc.stdout.splitlines() if len(ln) > 80]
    assert not long, long
    wide = ksearch(*args, columns=250)  # a wide terminal keeps one line per entry
    assert len(wide.stdout.splitlines()) <= len(proc.stdout.splitlines())
