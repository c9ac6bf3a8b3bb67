"""Where a prompt goes: OpenAI (Responses or Chat Completions), Anthropic (Messages, with prompt
caching), any OpenAI-compatible server, a DSPy program on any `dspy.LM`, or a recorded run (replay).
`ksearch.propose.registry` names them; a plugin's transport is any object with the `Backend` protocol.

Each backend turns a `Prompt` into a `Reply` (text, normalized finish reason, token counts) or
raises `BackendError` once the SDK's own retries (429, 5xx, timeouts, with backoff: `max_retries`)
are spent; a connection error or timeout names the URL and its cause (connection refused, host
name not resolved, timed out). SDKs are imported here, lazily, so evaluation workers never need
them; a missing one is a ConfigError naming the extra that installs it (`LLM_EXTRA`).

Each built-in backend also has a `preflight(cfg)`, which the LLM proposer runs once when it is made
(before the run directory exists) and before the SDK is imported: the SDK is installed, the key is
set, and the endpoint takes a TCP connection (`probe`: no request, no tokens). A refused
connection, an unknown host or no answer within `PROBE_S` is then a ConfigError naming the URL,
instead of a run of retries that evaluates nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
import threading
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from ksearch.errors import ConfigError, KsearchError
from ksearch.log import read_blob
from ksearch.log.history import read_rows
from ksearch.log.rows import ProposerCallRecord, ProposerCallRow
from ksearch.propose.base import ProposerStop
from ksearch.propose.prompt import Prompt
from ksearch.propose.settings import CONNECT_S, ProposerConfig

LLM_EXTRA = "llm"  # pyproject's extra with the SDKs (openai, anthropic, dspy)
PROBE_S = 3.0  # seconds the start-up reachability check waits for a TCP connection
# the SDKs' own endpoints when neither the block nor their environment variable names one
OPENAI_URL, ANTHROPIC_URL = "https://api.openai.com/v1", "https://api.anthropic.com"

FINISH = {
    "stop": "stop",
    "end_turn": "stop",
    "completed": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
}


@dataclass
class Reply:
    text: str
    finish: str | None  # stop | length | the provider's own word
    input_tokens: int = 0  # every prompt token, cached ones included
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    def __post_init__(self) -> None:  # each provider's word for a finish, in ours where we have one
        self.finish = FINISH.get(self.finish or "", self.finish)


class BackendError(KsearchError):
    """A call that failed after the SDK's retries; the message names the provider's error."""


class Backend(Protocol):
    model: str
    free: bool  # replay: nothing is paid

    def complete(self, prompt: Prompt) -> Reply: ...


KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}  # each provider's own variable


def _key(cfg: ProposerConfig, default_env: str, required: bool) -> str:
    """The key from proposer.api_key_env, else from `default_env`; a `required` one must be set."""
    env = cfg.api_key_env or default_env
    key = os.environ.get(env)
    if key:
        return key
    if required:
        raise ConfigError(
            f"{env} is not set: export your API key there (or name another variable in proposer.api_key_env)"
        )
    return "not-needed"  # local servers (vLLM, SGLang, Ollama) take any key


def _n(value: Any) -> int:
    return int(value or 0)


INSTALL = f"pip install 'ksearch[{LLM_EXTRA}]' (in a checkout: pip install -e '.[{LLM_EXTRA}]')"


def _missing(module: str, backend: str) -> ConfigError:
    return ConfigError(f"the {backend} proposer needs the {module} package: {INSTALL}")


def find_sdk(module: str, backend: str) -> None:
    """ConfigError saying what to install if `module` (an SDK of the llm extra) is not installed;
    nothing is imported."""
    if importlib.util.find_spec(module) is None:
        raise _missing(module, backend)


def require_sdk(module: str, backend: str) -> None:
    """Import `module` (an SDK of the llm extra); ConfigError saying what to install if it is missing
    or broken."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        if e.name is None or e.name.split(".")[0] == module:
            raise _missing(module, backend) from e
        raise ConfigError(  # the SDK is there but one of its own dependencies is not
            f"the {backend} proposer cannot import {module} ({e}): reinstall it with {INSTALL}"
        ) from e


# ---------------------------------------------------------------------------------- endpoints


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what caused it, outermost first (SDKs wrap the socket error two or three deep)."""
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and all(e is not s for s in seen):
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def transport_cause(exc: BaseException) -> str | None:
    """What went wrong on the wire, in words (connection refused, host name not resolved, timed
    out, ...), from anywhere in `exc`'s chain; None for an error the server answered with."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return "connection refused; is the server running (on that port)?"
    for e in chain:
        if isinstance(e, socket.gaierror):
            return f"the host name does not resolve ({e.strerror or e}); check the URL and your DNS"
    for e in chain:
        if "ConnectTimeout" in type(e).__name__:
            return "timed out connecting"
    for e in chain:
        if isinstance(e, TimeoutError) or "Timeout" in type(e).__name__:
            return "timed out"
    for e in chain:
        if isinstance(e, ConnectionResetError | BrokenPipeError) or type(e).__name__ == "RemoteProtocolError":
            return "the server closed the connection without a reply"
    for e in reversed(chain):  # the deepest socket error, e.g. Network is unreachable
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
    return None


def _proxy_for(url: str) -> str | None:
    """The proxy the SDKs' HTTP clients take for `url` from the environment (HTTPS_PROXY, ...)."""
    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


def probe(url: str, source: str = "", timeout_s: float = PROBE_S) -> None:
    """One TCP connection to `url`'s host and port (or to the proxy that reaches it), closed at once:
    no request, no tokens. ConfigError naming the URL (and the `source` it came from, if not the
    proposer block) and the cause when it cannot be made."""
    proxy = _proxy_for(url)
    parts = urlsplit(proxy or url)
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:  # a port that is not a number
        raise ConfigError(f"proposer base_url {url!r} is not a URL ({e})") from e
    if not host or parts.scheme not in ("http", "https", "socks5", "socks5h"):
        raise ConfigError(f"proposer base_url {url!r} is not an http(s) URL (e.g. http://localhost:8000/v1)")
    result: list[BaseException | None] = []

    def connect() -> None:  # name resolution has no timeout of its own: the thread bounds it
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            result.append(None)
        except OSError as e:
            result.append(e)

    worker = threading.Thread(target=connect, name="ksearch-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)
    error = result[0] if result else TimeoutError()
    if error is None:
        return
    cause = transport_cause(error) or str(error)
    if cause.startswith("timed out"):
        cause = f"no connection within {timeout_s:g} s (timed out); is the host up and the port open?"
    origin = f" ({source})" if source else ""
    via = f" through the proxy {proxy}" if proxy else ""
    raise ConfigError(f"cannot reach {url.rstrip('/')}{origin}{via}: {cause}")


def _sdk_endpoint(cfg: ProposerConfig, env: str, default: str) -> tuple[str, str]:
    """(URL, where it came from) as the SDK picks it: the block's base_url, else `env`, else `default`."""
    if cfg.base_url:
        return cfg.base_url, ""
    if os.environ.get(env):
        return os.environ[env], env
    return default, "the SDK's default"


def _call_failed(what: str, cfg: ProposerConfig, exc: BaseException, url: str | None) -> BackendError:
    """The BackendError for a call that failed after the SDK's retries: the URL and the cause for a
    transport error (refused, unresolved, timed out), the provider's error otherwise."""
    tries = f"{cfg.max_retries + 1} tr{'y' if cfg.max_retries == 0 else 'ies'}"
    head = f"{what} call to {url}" if url else f"{what} call"
    cause = transport_cause(exc)
    if cause == "timed out":
        return BackendError(
            f"{head} failed after {tries}: timed out (no reply within {cfg.timeout_s:g} s each)"
        )
    if cause == "timed out connecting":
        connect = min(CONNECT_S, cfg.timeout_s)
        return BackendError(
            f"{head} failed after {tries}: timed out (no connection within {connect:g} s each)"
        )
    if cause is not None:
        return BackendError(f"{head} failed after {tries}: {cause}")
    status = getattr(exc, "status_code", None)  # the SDKs retry 408, 409, 429 and 5xx only
    retried = isinstance(status, int) and (status in (408, 409, 429) or status >= 500)
    detail = " ".join(str(exc).split())[:500]
    return BackendError(
        f"{head} failed{f' after {tries}' if retried else ''}: {type(exc).__name__}: {detail}"
    )


def _request_url(exc: BaseException, default: str | None) -> str | None:
    """The URL the SDK's failed request went to (an APIError's request), else `default`."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    return str(url) if url else default


class OpenAIBackend:
    """OpenAI and OpenAI-compatible servers. `api: responses` uses the Responses API (OpenAI only);
    `chat` and every openai-compatible server use Chat Completions."""

    free = False

    def __init__(self, cfg: ProposerConfig):
        require_sdk("openai", cfg.backend)
        import openai

        self.cfg, self.model = cfg, cfg.model or ""
        self.compatible = cfg.backend == "openai-compatible"
        self.api = "chat" if self.compatible else cfg.api
        self._errors = openai.APIError
        try:
            self.client = openai.OpenAI(
                api_key=_key(cfg, KEY_ENV["openai"], not self.compatible),
                base_url=cfg.base_url,
                timeout=openai.Timeout(cfg.timeout_s, connect=min(CONNECT_S, cfg.timeout_s)),
                max_retries=cfg.max_retries,
            )
        except openai.OpenAIError as e:
            raise ConfigError(f"cannot set up the OpenAI client: {e}") from e
        self.endpoint = str(self.client.base_url).rstrip("/")

    @staticmethod
    def preflight(cfg: ProposerConfig) -> None:
        find_sdk("openai", cfg.backend)
        _key(cfg, KEY_ENV["openai"], cfg.backend != "openai-compatible")
        probe(*_sdk_endpoint(cfg, "OPENAI_BASE_URL", OPENAI_URL))

    def complete(self, prompt: Prompt) -> Reply:
        c = self.cfg
        extra: dict[str, Any] = {} if c.temperature is None else {"temperature": c.temperature}
        try:
            if self.api == "responses":
                if c.reasoning_effort:
                    extra["reasoning"] = {"effort": c.reasoning_effort}
                r = self.client.responses.create(
                    model=self.model,
                    instructions=prompt.system,
                    input=prompt.user,
                    max_output_tokens=c.max_tokens,
                    **extra,
                )
                finish = r.status
                if r.status == "incomplete" and r.incomplete_details is not None:
                    finish = r.incomplete_details.reason
                u = r.usage
                details = getattr(u, "input_tokens_details", None)
                return Reply(
                    r.output_text or "",
                    finish,
                    _n(u and u.input_tokens),
                    _n(u and u.output_tokens),
                    _n(details and details.cached_tokens),
                )
            if c.reasoning_effort:
                extra["reasoning_effort"] = c.reasoning_effort
            limit: dict[str, Any] = {
                "max_tokens" if self.compatible else "max_completion_tokens": c.max_tokens
            }
            r = self.client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": prompt.system},
                    {"role": "user", "content": prompt.user},
                ],
                **limit,
                **extra,
            )
        except self._errors as e:
            raise _call_failed(f"{c.backend} {self.api}", c, e, _request_url(e, self.endpoint)) from e
        choice = r.choices[0] if r.choices else None
        u = r.usage
        details = getattr(u, "prompt_tokens_details", None)
        text = (choice.message.content or "") if choice else ""
        finish = choice.finish_reason if choice else None
        return Reply(
            text,
            finish,
            _n(u and u.prompt_tokens),
            _n(u and u.completion_tokens),
            _n(details and details.cached_tokens),
        )


class AnthropicBackend:
    """The Messages API; the stable system prompt carries cache_control, so later calls read it
    from Anthropic's prompt cache."""

    free = False

    def __init__(self, cfg: ProposerConfig):
        require_sdk("anthropic", cfg.backend)
        import anthropic

        self.cfg, self.model = cfg, cfg.model or ""
        self._errors = anthropic.APIError
        self.client = anthropic.Anthropic(
            api_key=_key(cfg, KEY_ENV["anthropic"], True),
            base_url=cfg.base_url,
            timeout=anthropic.Timeout(cfg.timeout_s, connect=min(CONNECT_S, cfg.timeout_s)),
            max_retries=cfg.max_retries,
        )
        self.endpoint = str(self.client.base_url).rstrip("/")

    @staticmethod
    def preflight(cfg: ProposerConfig) -> None:
        find_sdk("anthropic", cfg.backend)
        _key(cfg, KEY_ENV["anthropic"], True)
        probe(*_sdk_endpoint(cfg, "ANTHROPIC_BASE_URL", ANTHROPIC_URL))

    def complete(self, prompt: Prompt) -> Reply:
        c = self.cfg  # no temperature: the SDK's Messages.create no longer takes sampling parameters
        try:
            r = self.client.messages.create(
                model=self.model,
                max_tokens=c.max_tokens,
                system=[{"type": "text", "text": prompt.system, "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": prompt.user}],
            )
        except self._errors as e:
            raise _call_failed("anthropic messages", c, e, _request_url(e, self.endpoint)) from e
        from anthropic.types import TextBlock

        text = "".join(b.text for b in r.content if isinstance(b, TextBlock))
        u = r.usage
        read, write = _n(u.cache_read_input_tokens), _n(u.cache_creation_input_tokens)
        return Reply(text, r.stop_reason, _n(u.input_tokens) + read + write, _n(u.output_tokens), read, write)


class DSPyBackend:
    """The three calls as DSPy signatures in one module (`KernelProposer`), run on a `dspy.LM`
    (litellm model names: openai/gpt-5-mini, anthropic/claude-sonnet-4-5, ollama_chat/qwen2.5-coder).
    Each signature has our stable context and the call's request as inputs and one string output,
    which the same parsers read; a DSPy optimizer can tune the module against the run's rewards."""

    free = False
    OUTPUT = {"propose_actions": "plan_json", "implement": "module_source", "reflect": "edit_script_json"}

    def __init__(self, cfg: ProposerConfig):
        # litellm would fetch its price map from the network on import; we price calls ourselves
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        require_sdk("dspy", cfg.backend)
        require_sdk("litellm", cfg.backend)  # the engine its LM runs on here
        import dspy

        self.cfg, self.model, self._dspy = cfg, cfg.model or "", dspy
        # litellm picks the provider's URL itself; a base_url of your own is checked at start
        self.endpoint = cfg.base_url.rstrip("/") if cfg.base_url else None
        # one LM call per proposer call: no second call through DSPy's JSON adapter on a format miss
        self.adapter = dspy.ChatAdapter(use_json_adapter_fallback=False)
        kwargs = self._lm_kwargs(cfg)
        try:
            self.lm = dspy.LM(
                self.model,
                temperature=cfg.temperature,
                max_tokens=cfg.max_tokens,
                cache=False,
                num_retries=cfg.max_retries,
                timeout=cfg.timeout_s,
                engine="litellm",
                **kwargs,
            )
        except dspy.utils.exceptions.LMConfigurationError as e:
            raise ConfigError(f"dspy.LM refuses this proposer block: {e}") from e
        self.program = make_dspy_program(dspy)

    @staticmethod
    def _lm_kwargs(cfg: ProposerConfig) -> dict[str, Any]:
        provider = (cfg.model or "").split("/", 1)[0]
        kwargs: dict[str, Any] = {"api_base": cfg.base_url} if cfg.base_url else {}
        # As the other backends: required unless a base_url names a server of your own. For other
        # providers with no api_key_env, litellm finds their credentials (GEMINI_API_KEY, AWS, ...).
        if cfg.api_key_env or provider in KEY_ENV:
            kwargs["api_key"] = _key(cfg, KEY_ENV.get(provider, ""), required=not cfg.base_url)
        return kwargs

    @staticmethod
    def preflight(cfg: ProposerConfig) -> None:
        find_sdk("dspy", cfg.backend)
        find_sdk("litellm", cfg.backend)
        DSPyBackend._lm_kwargs(cfg)
        if cfg.base_url:  # else litellm picks the provider's URL itself, as it picks its credentials
            probe(cfg.base_url)

    def complete(self, prompt: Prompt) -> Reply:
        dspy = self._dspy
        predictor = getattr(self.program, prompt.kind)
        start = len(self.lm.history)
        try:
            with dspy.context(lm=self.lm, adapter=self.adapter):
                out = predictor(context=prompt.system, request=prompt.user)
            text = str(getattr(out, self.OUTPUT[prompt.kind]) or "")
        except (
            dspy.utils.exceptions.AdapterParseError
        ) as e:  # not in DSPy's field format: our parsers read it raw
            text = e.lm_response or ""
        except dspy.LMError as e:  # DSPy wraps litellm's and the provider's errors in LMError
            raise _call_failed(f"dspy {self.model}", self.cfg, e, self.endpoint) from e
        calls = self.lm.history[start:]
        usage = [h.get("usage") or {} for h in calls]
        finish = None
        for h in calls:
            resp = h.get("response")
            choices = getattr(resp, "choices", None) or []
            if choices:
                finish = getattr(choices[0], "finish_reason", None)
        cached = sum(_n((u.get("prompt_tokens_details") or {}).get("cached_tokens")) for u in usage)
        return Reply(
            text,
            finish,
            sum(_n(u.get("prompt_tokens")) for u in usage),
            sum(_n(u.get("completion_tokens")) for u in usage),
            cached,
        )


def make_dspy_program(dspy: Any) -> Any:
    """`KernelProposer`: one dspy.Predict per proposer call (built here because dspy loads lazily)."""

    class ProposeActions(dspy.Signature):
        """Plan a GPU-kernel search: propose strategy decisions with alternative actions, as the request asks."""

        context: str = dspy.InputField(desc="rules, task contract, target facts, skills")
        request: str = dspy.InputField(desc="world model, memory and the reply format")
        plan_json: str = dspy.OutputField(desc="the plan as one JSON object")

    class Implement(dspy.Signature):
        """Write the candidate kernel module for the requested action (or search/replace edits to the parent)."""

        context: str = dspy.InputField(desc="rules, task contract, target facts, skills")
        request: str = dspy.InputField(desc="world model, parent kernel, last evidence, the action")
        module_source: str = dspy.OutputField(
            desc="the complete module in a ```python block, or search/replace edits"
        )

    class Reflect(dspy.Signature):
        """Update the search tree from a visit's outcomes with a world-model edit script."""

        context: str = dspy.InputField(desc="rules, task contract, target facts, skills")
        request: str = dspy.InputField(desc="world model, the visit's outcomes and the op format")
        edit_script_json: str = dspy.OutputField(desc='{"ops": [...]} as one JSON object')

    class KernelProposer(dspy.Module):
        def __init__(self):
            super().__init__()
            self.propose_actions = dspy.Predict(ProposeActions)
            self.implement = dspy.Predict(Implement)
            self.reflect = dspy.Predict(Reflect)

    return KernelProposer()


class ReplayBackend:
    """Serves the responses an earlier run recorded, in the order its calls were made: the same
    config and seed then give the same candidates, with no API and no cost."""

    free = True

    def __init__(self, cfg: ProposerConfig):
        run_dir = Path(cfg.replay_from or "")
        self.source, self.model = run_dir, cfg.model or "replay"
        self.queue: deque[ProposerCallRecord] = deque(recorded_calls(run_dir))
        if not self.queue:
            raise ConfigError(
                f"{run_dir} recorded no LLM responses (an offline run?); replay a run of an LLM proposer"
            )
        self.total = len(self.queue)

    def skip(self, n: int) -> None:
        """Drop the first n recorded calls (a resumed replay has served them already)."""
        for _ in range(min(n, len(self.queue))):
            self.queue.popleft()

    def complete(self, prompt: Prompt) -> Reply:
        if not self.queue:
            raise ProposerStop(
                f"replay exhausted: all {self.total} recorded responses of {self.source} were served"
            )
        rec = self.queue.popleft()
        if rec.kind != prompt.kind:
            raise ProposerStop(
                f"replay diverged from {self.source}: its call {self.total - len(self.queue)} was "
                f"{rec.kind}, this run asks for {prompt.kind} (same config and seed?)"
            )
        if not rec.response_blob:
            raise BackendError(f"replayed failure: {rec.failure or 'no response recorded'}")
        text = read_blob(self.source, rec.response_blob).decode()
        return Reply(
            text,
            rec.finish,
            rec.prompt_tokens,
            rec.completion_tokens,
            rec.cached_tokens,
            rec.cache_write_tokens,
        )


def call_rows(run_dir: Path) -> list[ProposerCallRecord]:
    """The proposer_call rows of a run, in order ([] before its history exists)."""
    if not (Path(run_dir) / "history.jsonl").exists():
        return []
    rows = read_rows(run_dir, ProposerCallRecord.KIND)
    return [row.payload for row in rows if isinstance(row, ProposerCallRow)]


def recorded_calls(run_dir: Path) -> list[ProposerCallRecord]:
    """The calls that went to a backend (each stored its prompt), answered or failed."""
    return [r for r in call_rows(run_dir) if r.prompt_blob]


def make_backend(cfg: ProposerConfig) -> Backend:
    """The LLM transport of the block's backend (ksearch.propose.registry)."""
    from ksearch.propose.registry import proposer_backend

    transport = proposer_backend(cfg.backend).transport
    if transport is None:
        raise ConfigError(f"backend {cfg.backend!r} makes no LLM calls")
    return transport(cfg)
