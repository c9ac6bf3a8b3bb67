"""LLM proposers fail fast and say why: a missing SDK is a ConfigError naming the extra to install;
a dead endpoint is a ConfigError naming the URL and the cause before the run starts (one TCP
connection, no tokens); one call on a host that never answers is bounded by `call_limit_s` and its
failure names the URL and "timed out"; a run whose endpoint stops answering stops with that cause.

No network and no API key: local sockets (a closed port, a listener that never answers) and the
local HTTP server of tests/llm_server.py, driven by the real SDKs."""

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ksearch.errors import ConfigError
from ksearch.log import iter_rows
from ksearch.propose.backends import BackendError, make_backend, probe, require_sdk
from ksearch.propose.llm import FAILED_IN_A_ROW, make_proposer
from ksearch.propose.prompt import Prompt
from ksearch.propose.settings import ProposerConfig
from ksearch.search.run import start_run
from ksearch.task import load_task

sys.path.insert(0, str(Path(__file__).parent))
from llm_server import FakeLLM  # noqa: E402
from runconfigs import ONE_ISLAND, write_run_config

ROOT = Path(__file__).resolve().parent.parent
MISSING = [m for m in ("openai", "anthropic", "dspy") if importlib.util.find_spec(m) is None]
needs_llm = pytest.mark.skipif(
    bool(MISSING), reason=f"the llm extra is not installed ({', '.join(MISSING)}): pip install -e '.[llm]'"
)
BASE_URL = {"openai": "/v1", "openai-compatible": "/v1", "anthropic": "", "dspy": "/v1"}
MODEL = {
    "openai": "gpt-5-mini",
    "openai-compatible": "qwen2.5-coder",
    "anthropic": "claude-haiku-4-5",
    "dspy": "openai/gpt-4.1-mini",
}


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    for var in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that takes connections (the kernel's backlog) and never answers: a hung server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield s.getsockname()[1]


def block(backend: str, url: str, **changes) -> dict:
    return {"backend": backend, "model": MODEL[backend], "base_url": url + BASE_URL[backend], **changes}


def config(tmp: Path, proposer: dict | str, **changes) -> Path:
    return write_run_config(tmp, proposer=proposer, **{"search": ONE_ISLAND, **changes})


def payloads(run_dir: Path, kind: str) -> list[dict]:
    return [line.row["payload"] for line, _ in iter_rows(run_dir) if line.row["kind"] == kind]


def ksearch_run(tmp: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ksearch", "run", *args, "--log-dir", str(tmp / "runs")],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=ROOT,
        timeout=120,
    )
    return proc, time.monotonic() - t0


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# ---------------------------------------------------------------------------------- a missing SDK


@pytest.mark.parametrize(
    "spec,module",
    [
        ("openai:gpt-5-mini", "openai"),
        ("openai-compatible:qwen2.5-coder@http://127.0.0.1:1/v1", "openai"),
        ("anthropic:claude-haiku-4-5", "anthropic"),
        ("dspy:openai/gpt-4.1-mini", "dspy"),
    ],
)
def test_a_missing_sdk_names_the_extra_that_installs_it(spec, module, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, module, None)  # what `import openai` meets without the llm extra
    cfg = ProposerConfig.model_validate(spec)
    want = (
        f"the {cfg.backend} proposer needs the {module} package: "
        "pip install 'ksearch[llm]' (in a checkout: pip install -e '.[llm]')"
    )
    with pytest.raises(ConfigError) as err:  # when the proposer is made: before its key and endpoint
        make_proposer(cfg, load_task("rmsnorm"), "float16", ["h100"], tmp_path / "run")
    assert str(err.value) == want
    with pytest.raises(ConfigError) as err:  # and where the transport imports it
        make_backend(cfg)
    assert str(err.value) == want


def test_a_broken_sdk_install_names_what_it_lacks(tmp_path, monkeypatch):
    pkg = tmp_path / "brokensdk"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import no_such_dependency_of_brokensdk\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        ConfigError, match="cannot import brokensdk .*no_such_dependency_of_brokensdk.*reinstall"
    ):
        require_sdk("brokensdk", "openai")


def test_without_the_sdk_ksearch_run_prints_one_error_line_and_makes_no_run(tmp_path):
    site = tmp_path / "site"
    site.mkdir()  # sitecustomize runs at start-up: openai is then missing as in a base install
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['openai'] = None\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    proc, _ = ksearch_run(tmp_path, "configs/quickstart.yaml", "--proposer", "openai:gpt-5-mini", env=env)
    line = one_error_line(proc)
    assert line == (
        "error: the openai proposer needs the openai package: "
        "pip install 'ksearch[llm]' (in a checkout: pip install -e '.[llm]')"
    )
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------- a dead endpoint


@needs_llm
def test_a_dead_endpoint_fails_at_start_within_seconds(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    proc, wall = ksearch_run(tmp_path, "configs/quickstart.yaml", "--proposer", f"openai-compatible:x@{url}")
    line = one_error_line(proc)
    assert line == f"error: cannot reach {url}: connection refused; is the server running (on that port)?"
    assert wall < 10, f"{wall:.1f} s"
    assert not (tmp_path / "runs").exists()  # before the run directory is made


@needs_llm
@pytest.mark.parametrize("backend", ["openai", "anthropic", "dspy"])
def test_every_backend_checks_its_endpoint_when_the_proposer_is_made(backend, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    cfg = ProposerConfig.model_validate(block(backend, url))
    make_backend(cfg)  # the transport alone connects nowhere (and its SDK is imported now, not timed)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=f"^cannot reach {url}{BASE_URL[backend]}: connection refused"):
        make_proposer(cfg, load_task("rmsnorm"), "float16", ["h100"], tmp_path / "run")
    assert time.monotonic() - t0 < 3
    assert not (tmp_path / "run").exists()


@needs_llm
def test_a_live_endpoint_passes_the_check_without_a_request(tmp_path):
    with FakeLLM() as llm:
        for backend in ("openai", "anthropic", "dspy"):
            cfg = ProposerConfig.model_validate(block(backend, llm.url))
            make_proposer(cfg, load_task("rmsnorm"), "float16", ["h100"], tmp_path / "run")
        assert llm.script.requests == []  # one TCP connection each: nothing asked, nothing paid


@needs_llm
def test_the_check_names_an_unknown_host_a_proxy_and_the_sdks_own_variables(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match=r"^cannot reach http://no-such-host\.invalid:8000/v1: "):
        probe("http://no-such-host.invalid:8000/v1")  # unresolvable (or, with no DNS at all, timed out)
    proxy = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HTTPS_PROXY", proxy)  # the SDKs' HTTP clients would go through it: so does the check
    with pytest.raises(ConfigError) as err:
        make_proposer(  # the hosted default, checked through the proxy: no network needed
            ProposerConfig.model_validate("openai:gpt-5-mini"),
            load_task("rmsnorm"),
            "float16",
            ["h100"],
            tmp_path,
        )
    assert str(err.value) == (
        f"cannot reach https://api.openai.com/v1 (the SDK's default) through the proxy {proxy}: "
        "connection refused; is the server running (on that port)?"
    )
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)  # the SDK's own variable is where it goes
    with pytest.raises(ConfigError, match=rf"^cannot reach {url} \(ANTHROPIC_BASE_URL\): connection refused"):
        make_proposer(
            ProposerConfig.model_validate("anthropic:claude-haiku-4-5"),
            load_task("rmsnorm"),
            "float16",
            ["h100"],
            tmp_path,
        )
    with pytest.raises(ConfigError, match="not an http"):
        probe("localhost:8000")


# ---------------------------------------------------------------------------------- a silent host


def test_one_call_is_bounded_by_default():
    cfg = ProposerConfig()
    assert (cfg.timeout_s, cfg.max_retries) == (120, 2)
    assert cfg.call_limit_s == 3 * 120 + 2 * 8 < 400  # was 5 x 180 s + backoff: 15 minutes


@needs_llm
def test_the_sdk_clients_get_the_timeout_and_the_retries():
    c = make_backend(ProposerConfig.model_validate("openai:gpt-5-mini")).client
    assert c.max_retries == 2 and (c.timeout.read, c.timeout.connect) == (120, 5)
    c = make_backend(ProposerConfig.model_validate("anthropic:claude-haiku-4-5")).client
    assert c.max_retries == 2 and (c.timeout.read, c.timeout.connect) == (120, 5)
    cfg = ProposerConfig.model_validate(
        {"backend": "dspy", "model": "openai/m", "timeout_s": 30, "max_retries": 1}
    )
    lm = make_backend(cfg).lm
    assert lm.kwargs["timeout"] == 30 and lm.num_retries == 1


@needs_llm
@pytest.mark.parametrize(
    "backend,api,path",
    [
        ("openai", "responses", "/v1/responses"),
        ("openai-compatible", "chat", "/v1/chat/completions"),
        ("anthropic", "messages", "/v1/messages"),
        ("dspy", None, "/v1"),
    ],
)
def test_a_silent_host_times_out_within_the_bound_naming_the_url(backend, api, path, silent):
    url = f"http://127.0.0.1:{silent}"
    cfg = ProposerConfig.model_validate(block(backend, url, timeout_s=0.5, max_retries=1))
    transport = make_backend(cfg)
    t0 = time.monotonic()
    with pytest.raises(BackendError) as err:
        transport.complete(Prompt("implement", "You are the proposer.", "## Call: implement"))
    took = time.monotonic() - t0
    assert 1.0 <= took < cfg.call_limit_s + 3  # two tries of 0.5 s; the slack is the SDKs' own start-up
    assert f"call to {url}{path} failed after 2 tries: timed out (no reply within 0.5 s each)" in str(
        err.value
    )


# ---------------------------------------------------------------------------------- mid-run failures


@needs_llm
def test_a_run_whose_endpoint_never_answers_stops_with_the_url_and_the_cause(silent, tmp_path):
    url = f"http://127.0.0.1:{silent}/v1"
    proposer = {
        "backend": "openai-compatible",
        "model": "m",
        "base_url": url,
        "timeout_s": 0.3,
        "max_retries": 0,
    }
    result = start_run(config(tmp_path, proposer), log_dir=tmp_path / "runs")
    assert result.progress.evaluations == 0
    assert result.stop_reason.startswith(
        f"the proposer got no reply {FAILED_IN_A_ROW} calls in a row (fix the cause, then continue with "
        "--resume RUN_DIR); the last: "
    )
    assert f"call to {url}/chat/completions failed after 1 try: timed out" in result.stop_reason
    failures = payloads(result.run_dir, "proposer_failure")
    assert len(failures) == FAILED_IN_A_ROW
    assert all(f"{url}/chat/completions" in f["error"] and "timed out" in f["error"] for f in failures)
    assert payloads(result.run_dir, "run_stop")[-1]["reason"] == result.stop_reason


@needs_llm
def test_a_server_gone_mid_run_is_a_refused_connection_naming_the_url(tmp_path):
    with socket.socket() as s:  # up when the proposer is made ...
        s.bind(("127.0.0.1", 0))
        s.listen()
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        cfg = ProposerConfig.model_validate(block("openai-compatible", url, max_retries=1))
        proposer = make_proposer(cfg, load_task("rmsnorm"), "float16", ["h100"], tmp_path)
    transport = proposer.backend  # ... and gone when it is asked
    with pytest.raises(BackendError) as err:
        transport.complete(Prompt("implement", "You are the proposer.", "## Call: implement"))
    assert str(err.value) == (
        f"openai-compatible chat call to {url}/v1/chat/completions failed after 2 tries: "
        "connection refused; is the server running (on that port)?"
    )


@needs_llm
def test_a_reply_resets_the_count_of_failed_calls(tmp_path):
    with FakeLLM() as llm:
        script = llm.reset([("*", "500")] * 2)  # two calls without a reply, then replies
        cfg = ProposerConfig.model_validate(block("openai-compatible", llm.url, max_retries=0))
        proposer = make_proposer(cfg, load_task("rmsnorm"), "float16", ["h100"], tmp_path)
        prompt = Prompt("reflect", "You are the proposer.", "## Call: reflect")
        for n in (1, 2):
            call, reply = proposer._call(prompt)
            assert reply is None and "failed after 1 try: InternalServerError" in call.failure
            assert proposer.failed_in_a_row == n and proposer.stop_reason() is None
        call, reply = proposer._call(prompt)
        assert reply is not None and proposer.failed_in_a_row == 0 and len(script.requests) == 3
