"""LLM proposers end to end, with no network and no API key: a local server (tests/llm_server.py)
speaks enough of the OpenAI (chat completions, responses) and Anthropic (messages) APIs to serve
scripted replies, and the real openai and anthropic SDKs and dspy.LM (litellm) talk to it. Short
CPU runs of the rmsnorm task complete with every backend; injected 429s, 500s, a timeout, empty,
code-less, truncated and non-JSON replies are retried or logged; a dollar budget stops a run
cleanly and resumably; a replay reproduces a run's candidates without the API."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from ksearch.context import count_tokens
from ksearch.errors import ConfigError
from ksearch.log import iter_rows, read_blob, verify_log
from ksearch.propose.backends import make_backend
from ksearch.propose.prices import cost_usd
from ksearch.propose.prompt import PromptBuilder, clip
from ksearch.propose.replies import ReplyError, parse_edit_script, parse_module, parse_plan
from ksearch.propose.settings import PromptBudget, ProposerConfig, parse_spec
from ksearch.search.run import start_run
from ksearch.task import load_task
from ksearch.worldmodel import WorldModel

MISSING = [m for m in ("openai", "anthropic", "dspy") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"the llm extra is not installed ({', '.join(MISSING)}): "
    "pip install -e '.[llm]' (.ci/run installs it)",
)
sys.path.insert(0, str(Path(__file__).parent))
from llm_server import KERNEL, FakeLLM  # noqa: E402
from runconfigs import ONE_ISLAND, write_run_config  # noqa: E402

FAST = {
    "max_retries": 2,
    "timeout_s": 2.5,
    "temperature": None,
}  # SDK backoff is short with retry-after-ms: 1


@pytest.fixture(scope="module")
def llm():
    count_tokens("warm the tokenizer")  # so the server's first reply is not slowed by loading it
    with pytest.MonkeyPatch.context() as mp, FakeLLM() as server:
        mp.setenv("OPENAI_API_KEY", "sk-test")
        mp.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        mp.delenv("OPENAI_BASE_URL", raising=False)
        mp.delenv("ANTHROPIC_BASE_URL", raising=False)
        server.script.slow_s = 4.0
        yield server


def config(tmp: Path, proposer: dict | str, **changes) -> Path:
    return write_run_config(tmp, proposer=proposer, **{"search": ONE_ISLAND, **changes})


def payloads(run_dir: Path, kind: str) -> list[dict]:
    return [line.row["payload"] for line, _ in iter_rows(run_dir) if line.row["kind"] == kind]


def backend_calls(run_dir: Path) -> list[dict]:
    return [c for c in payloads(run_dir, "proposer_call") if c["prompt_blob"]]


ALL_CALLS = {"propose_actions", "implement", "reflect"}


def assert_every_call_recorded(run_dir: Path, model: str, priced: bool = True, kinds=ALL_CALLS) -> list[dict]:
    calls = backend_calls(run_dir)
    assert calls and {c["kind"] for c in calls} >= kinds
    for c in calls:
        prompt = json.loads(read_blob(run_dir, c["prompt_blob"]))
        assert prompt["kind"] == c["kind"] and f"## Call: {c['kind']}" in prompt["user"]
        assert prompt["system"].startswith("You are the proposer of ksearch")  # stable content first
        assert c["model"] == model and c["latency_s"] > 0
        if c["response_blob"] is None:
            assert c["failure"].startswith("no reply")
            continue
        read_blob(run_dir, c["response_blob"])
        assert c["prompt_tokens"] > 500 and c["completion_tokens"] >= 0
        if priced:
            assert (
                c["usd"]
                == cost_usd(
                    model,
                    c["prompt_tokens"],
                    c["completion_tokens"],
                    c["cached_tokens"],
                    c["cache_write_tokens"],
                )
                and c["usd"] > 0
            )
        else:
            assert c["usd"] is None
    assert verify_log(run_dir).ok
    return calls


def steps(run_dir: Path) -> list[tuple[str, str, bool]]:
    return [(s["candidate"], s["blob"], s["passed"]) for s in payloads(run_dir, "step")]


# ---------------------------------------------------------------------------------- OpenAI + faults

FAULTS = [
    ("*", "429"),
    ("*", "500"),
    ("implement", "timeout"),
    ("implement", "empty"),
    ("implement", "nocode"),
    ("implement", "truncated"),
    ("reflect", "badjson"),
    ("reflect", "badjson"),
]


@pytest.fixture(scope="module")
def openai_run(llm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openai")
    script = llm.reset(FAULTS)
    result = start_run(
        config(tmp, {"backend": "openai", "model": "gpt-5-mini", "base_url": llm.url + "/v1", **FAST}),
        log_dir=tmp / "runs",
    )
    return result, list(script.requests), list(script.faults)


def test_openai_responses_run_survives_every_injected_fault(openai_run):
    result, requests, left = openai_run
    run_dir = result.run_dir
    assert left == [] and result.stop_reason.startswith("evaluation budget spent")
    assert {r["api"] for r in requests} == {"responses"}
    assert requests[0]["body"]["max_output_tokens"] == 8192 and "temperature" not in requests[0]["body"]
    # 429 and 500 were retried by the SDK: three requests, one call, one plan
    assert [r["fault"] for r in requests[:3]] == ["429", "500", None]
    calls = assert_every_call_recorded(run_dir, "gpt-5-mini")
    assert calls[0]["kind"] == "propose_actions" and calls[0]["failure"] is None
    # the timeout was retried by the SDK; the empty, code-less and truncated replies became failures
    # with their raw text, each asked once more with the error
    failures = payloads(run_dir, "proposer_failure")
    errors = [f["error"] for f in failures]
    assert any("empty" in e for e in errors) and any("no ```python code block" in e for e in errors)
    assert any("truncated" in e for e in errors) and sum("not JSON" in e for e in errors) == 2
    nocode = next(f for f in failures if "code block" in f["error"])
    assert nocode["raw"].startswith("I would write a kernel")
    truncated = next(f for f in failures if "truncated" in f["error"])
    assert (
        truncated["raw"].startswith("```python")
        and read_blob(run_dir, truncated["response_blob"]).decode() == truncated["raw"]
    )
    retry = json.loads(
        read_blob(
            run_dir,
            next(
                c
                for c in calls
                if c["kind"] == "implement"
                and "empty" not in (c["failure"] or "")
                and c["prompt_blob"] != calls[1]["prompt_blob"]
            )["prompt_blob"],
        )
    )
    assert "## Your previous reply was rejected" in retry["user"]
    # empty then code-less: that implement gave no candidate; two invalid edit scripts: the offline rules
    kinds = [c["summary"] for c in payloads(run_dir, "proposer_call")]
    assert any(s.startswith("fallback: the offline rules") for s in kinds)
    # the run still evaluated its budget with the scripted kernels, and they pass
    got = steps(run_dir)
    assert len(got) == 4 and all(passed for _, _, passed in got)
    assert any(c["cached_tokens"] > 0 for c in calls)  # the stable system prompt is a cacheable prefix
    assert WorldModel.from_log(run_dir).snapshot() == result.wm.snapshot()


def test_replay_reproduces_the_candidates_without_the_api(openai_run, llm, tmp_path):
    result, _, _ = openai_run
    llm.reset()
    replay = start_run(
        None, log_dir=tmp_path, overrides={"proposer": "replay", "replay_from": str(result.run_dir)}
    )
    assert llm.script.requests == []  # nothing went to the server
    assert steps(replay.run_dir) == steps(result.run_dir)
    original = [(c["kind"], c["response_blob"]) for c in backend_calls(result.run_dir)]
    assert [(c["kind"], c["response_blob"]) for c in backend_calls(replay.run_dir)] == original
    assert all(c["usd"] == 0 for c in backend_calls(replay.run_dir))
    assert verify_log(replay.run_dir).ok


# ---------------------------------------------------------------------------------- other backends


def test_anthropic_messages_run_with_prompt_caching(llm, tmp_path):
    script = llm.reset([("*", "429")])
    result = start_run(
        config(
            tmp_path,
            {"backend": "anthropic", "model": "claude-haiku-4-5", "base_url": llm.url, **FAST},
            budget={"evaluations": 2, "wall_s": 600},
        ),
        log_dir=tmp_path / "runs",
    )
    assert result.stop_reason.startswith("evaluation budget spent")
    assert {r["api"] for r in script.requests} == {"messages"}
    system = script.requests[-1]["body"]["system"]
    assert system[0]["cache_control"] == {"type": "ephemeral"}
    calls = assert_every_call_recorded(result.run_dir, "claude-haiku-4-5")
    assert calls[0]["cache_write_tokens"] > 0 and all(c["cached_tokens"] > 0 for c in calls[1:])
    assert all(c["cached_tokens"] + c["cache_write_tokens"] <= c["prompt_tokens"] for c in calls)
    assert len(steps(result.run_dir)) == 2


def test_openai_compatible_endpoint_from_the_command_line(llm, tmp_path):
    script = llm.reset()
    cfg = config(tmp_path, "offline", budget={"evaluations": 2, "wall_s": 600})
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("OPENAI_API_KEY")  # a local server needs no key
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ksearch",
            "run",
            str(cfg),
            "--log-dir",
            str(tmp_path / "runs"),
            "--proposer",
            f"openai-compatible:qwen2.5-coder@{llm.url}/v1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = list((tmp_path / "runs").iterdir())
    assert {r["api"] for r in script.requests} == {"chat"}
    assert all("max_tokens" in r["body"] and r["body"]["model"] == "qwen2.5-coder" for r in script.requests)
    assert_every_call_recorded(run_dir, "qwen2.5-coder", priced=False)  # not in the price table
    assert len(steps(run_dir)) == 2


def test_dspy_program_on_a_dspy_lm(llm, tmp_path):
    script = llm.reset()
    result = start_run(
        config(
            tmp_path,
            {"backend": "dspy", "model": "openai/gpt-4.1-mini", "base_url": llm.url + "/v1", **FAST},
            budget={"evaluations": 2, "wall_s": 600},
        ),
        log_dir=tmp_path / "runs",
    )
    assert result.stop_reason.startswith("evaluation budget spent")
    assert {r["api"] for r in script.requests} == {"chat"}
    first = script.requests[0]["body"]["messages"]
    assert "plan_json" in first[0]["content"]  # DSPy's adapter wrote the prompt from our signature
    calls = assert_every_call_recorded(result.run_dir, "openai/gpt-4.1-mini")
    assert len(calls) == len(script.requests) and len(steps(result.run_dir)) == 2


# ---------------------------------------------------------------------------------- dollars


def test_a_dollar_budget_stops_the_run_cleanly_and_it_resumes(llm, tmp_path):
    script = llm.reset()
    proposer = {"backend": "openai", "api": "chat", "model": "gpt-5", "base_url": llm.url + "/v1", **FAST}
    result = start_run(
        config(tmp_path, proposer, budget={"evaluations": 6, "wall_s": 600, "llm_usd": 0.01}),
        log_dir=tmp_path / "runs",
    )
    run_dir = result.run_dir
    assert result.stop_reason.startswith("LLM budget spent") and "budget.llm_usd" in result.stop_reason
    assert {r["api"] for r in script.requests} == {"chat"}
    assert "max_completion_tokens" in script.requests[0]["body"]
    calls = assert_every_call_recorded(run_dir, "gpt-5", kinds={"propose_actions", "implement"})
    spent = sum(c["usd"] for c in calls)
    assert 0.01 <= spent < 0.05  # the run overshoots by one call at most
    before = steps(run_dir)
    assert 1 <= len(before) < 6
    assert payloads(run_dir, "run_stop")[-1]["reason"] == result.stop_reason
    # resumable: more dollars, two more candidates
    more = start_run(None, resume=run_dir, overrides={"budget.llm_usd": 1.0, "budget.evaluations": 2})
    after = steps(run_dir)
    assert after[: len(before)] == before and [c for c, _, _ in after] == [
        f"c{i:04d}" for i in range(len(before) + 2)
    ]
    assert more.stop_reason.startswith("evaluation budget spent") and verify_log(run_dir).ok
    assert WorldModel.from_log(run_dir).snapshot() == more.wm.snapshot()


def test_a_missing_api_key_is_a_clear_error_and_leaves_no_run(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        start_run(config(tmp_path, "openai:gpt-5-mini"), log_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_dspy_looks_up_its_key_as_the_other_backends_do(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY is not set"):
        make_backend(ProposerConfig.model_validate("dspy:anthropic/claude-haiku-4-5"))
    with pytest.raises(ConfigError, match="MY_KEY is not set"):  # a named variable must be set too
        make_backend(ProposerConfig(backend="dspy", model="openai/gpt-4.1-mini", api_key_env="MY_KEY"))
    monkeypatch.setenv("MY_KEY", "sk-mine")
    lm = make_backend(ProposerConfig(backend="dspy", model="openai/gpt-4.1-mini", api_key_env="MY_KEY")).lm
    assert lm.kwargs["api_key"] == "sk-mine"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a server of your own takes any key
    lm = make_backend(ProposerConfig(backend="dspy", model="openai/m", base_url="http://localhost:1/v1")).lm
    assert lm.kwargs["api_key"] == "not-needed"


# ---------------------------------------------------------------------------------- pieces


def test_proposer_specs():
    assert parse_spec("openai:gpt-5") == {"backend": "openai", "model": "gpt-5", "base_url": None}
    assert parse_spec("openai-compatible:qwen2.5:7b@http://h:8000/v1") == {
        "backend": "openai-compatible",
        "model": "qwen2.5:7b",
        "base_url": "http://h:8000/v1",
    }
    assert parse_spec("dspy:anthropic/claude-sonnet-4-5")["model"] == "anthropic/claude-sonnet-4-5"
    assert ProposerConfig.model_validate("anthropic:claude-haiku-4-5").backend == "anthropic"
    for bad in ("gpt-5", "openai:", "cohere:x"):
        with pytest.raises(ConfigError):
            parse_spec(bad)
    for no_url in ("openai-compatible:m", "openai-compatible:m@"):  # the config checks the URL, once
        with pytest.raises(ValidationError, match="needs base_url"):
            ProposerConfig.model_validate(no_url)


def test_replies_are_validated():
    entry, args = "run", ["x", "weight", "out"]
    source, how = parse_module(f"text\n```python\n{KERNEL}```", None, entry, args)
    assert how == "a complete module" and "def run(" in source
    edit = "<<<<<<< SEARCH\n    M, N = x.shape\n=======\n    M, N = x.shape  # edited\n>>>>>>> REPLACE"
    assert "# edited" in parse_module(edit, KERNEL, entry, args)[0]
    with pytest.raises(
        ReplyError, match="not found.*reply with the complete module"
    ):  # asks for the full rewrite
        parse_module(edit.replace("M, N", "A, B", 1), KERNEL, entry, args)
    for wrong in ("x, out", "x, weight, out, more", "x, weight, out, *, eps"):  # run(x, weight, out) fails
        with pytest.raises(ReplyError, match="wrong entry signature"):
            parse_module(f"```python\ndef run({wrong}):\n    pass\n```", None, entry, args)
    for right in ("x, weight, out, eps=1e-6", "*tensors", "x, /, weight, out=None"):
        module = f"def run({right}):\n    pass\n"
        assert parse_module(f"```python\n{module}```", None, entry, args) == (module, "a complete module")
    with pytest.raises(ReplyError, match="does not parse"):
        parse_module("```python\ndef run(x, weight, out:\n```", None, entry, args)
    with pytest.raises(ReplyError, match="schema"):
        parse_plan('{"decisions": []}')
    wm = WorldModel.new("t")
    with pytest.raises(ReplyError, match="unknown node"):
        parse_edit_script('{"ops": [{"op": "update", "node": "n9", "fields": {"priority": 0.2}}]}', wm)
    assert parse_edit_script("[]", wm) == []


def test_prompt_sections_stay_within_their_budgets():
    budget = PromptBudget(task=300, target=200, skills=300, world_model=150, memory=100)
    builder = PromptBuilder(load_task("rmsnorm"), "float16", ["h100"], budget)
    from ksearch.propose.base import SearchState, Tried
    from ksearch.propose.offline import OfflineProposer

    state = SearchState(load_task("rmsnorm"), WorldModel.new("rmsnorm"), Tried(), None)
    for ops in OfflineProposer("rmsnorm").propose_actions(state, 2):  # a tree big enough to need folding
        state.wm.apply(ops)
    prompt = builder.propose_actions(state, 1)
    budgeted = {
        name: getattr(budget, {"tree": "world_model"}.get(name, name))
        for name in prompt.sections
        if {"tree": "world_model"}.get(name, name) in PromptBudget.model_fields
    }
    assert {"task", "target", "skills", "tree", "memory"} <= set(budgeted)
    for name, limit in budgeted.items():
        assert prompt.sections[name] <= limit, (name, prompt.sections[name], limit)
    assert "Entry: def run(x, weight, out)" in prompt.system and prompt.user.endswith("}]}]}")
    assert builder.propose_actions(state, 1).system == prompt.system  # stable: the same every call


@pytest.mark.parametrize(
    "task,dtype,topics",
    [
        (
            "matmul",
            "bfloat16",
            {"b200": "tcgen05", "h100": "wgmma", "h200": "wgmma", "mi300x": "mfma", "mi355x": "mfma"},
        ),
        ("rmsnorm", "float16", dict.fromkeys(("b200", "h100", "mi355x"), "occupancy")),
    ],
)
def test_the_target_section_is_the_isa_packet_of_the_targets_own_matrix_instructions(task, dtype, topics):
    for target, topic in topics.items():
        builder = PromptBuilder(load_task(task), dtype, [target], PromptBudget())
        assert builder.isa_topic() == topic
        assert builder._target_text().startswith(f"# ISA packet: {topic} on {target}")


def test_clip_marks_the_cut():
    text = "def kernel(x):\n    return x * 2  # doubled\n" * 200
    assert clip(text, 10_000) == text and clip(text, 0) == ""
    cut = clip(text, 100)
    assert cut.endswith("\n[... cut to 100 tokens]") and text.startswith(cut.rsplit("\n[...", 1)[0])
    assert 90 < count_tokens(cut) <= 100
