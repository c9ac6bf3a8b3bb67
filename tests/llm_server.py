"""A local stand-in for the OpenAI (chat completions, responses) and Anthropic (messages) APIs, for
tests: scripted replies for ksearch's three proposer calls, token counts from the real o200k
tokenizer on what was actually sent, simulated prompt caching, and injected faults.

Faults are queued as (call kind or "*", fault) and each is spent by the next request of that kind:
    429 / 500    an HTTP error with retry-after-ms: 1 (the SDK retries)
    timeout      the reply comes after `slow_s` seconds (past the client's timeout; the SDK retries)
    empty        an empty reply text
    nocode       prose without a code block
    badjson      prose instead of the JSON edit script
    truncated    a reply cut off inside its code block, with the provider's length stop reason
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ksearch.context import count_tokens

KERNEL = (Path(__file__).parent / "honest" / "rmsnorm_row.py").read_text()
WARPS_LINE = "    warps = 8 if block >= 4096 else 4\n"
assert WARPS_LINE in KERNEL


def kernel(variant: int) -> str:
    """A working RMSNorm module; variants differ in their warp count (4 or 8: fewer spill registers on h100)."""
    warps = [4, 8][variant % 2]
    return KERNEL.replace(WARPS_LINE, f"    warps = {warps}  # variant {variant}\n")


class Script:
    def __init__(self):
        self.faults: deque[tuple[str, str]] = deque()
        self.requests: list[dict] = []  # {"path", "kind", "body", "status"}
        self.served = 0
        self.seen_prefixes: set[str] = set()
        self.slow_s = 3.0
        self.kernels: list[str] | None = None  # served by implement instead of the RMSNorm variants
        self.lock = threading.Lock()

    def take_fault(self, kind: str) -> str | None:
        with self.lock:
            for i, (k, fault) in enumerate(self.faults):
                if k in ("*", kind):
                    del self.faults[i]
                    return fault
        return None

    def reply(self, kind: str, prompt: str) -> str:
        with self.lock:
            self.served += 1
            n = self.served
        if kind == "propose_actions":
            plan = {
                "decisions": [
                    {
                        "title": "rows per program",
                        "actions": [
                            {
                                "title": "one row per program",
                                "description": "whole row in one block",
                                "rationale": "simple",
                                "difficulty": 1,
                                "expected_speedup": 1.5,
                                "priority": 0.8,
                            },
                            {
                                "title": "tuned warps",
                                "description": "pick num_warps by row length",
                                "rationale": "occupancy",
                                "difficulty": 2,
                                "expected_speedup": 1.3,
                                "priority": 0.6,
                            },
                        ],
                    }
                ]
            }
            return "Here is the plan.\n```json\n" + json.dumps(plan, indent=1) + "\n```"
        if kind == "implement" and self.kernels:
            return f"```python\n{self.kernels[n % len(self.kernels)]}```"
        if kind == "implement":
            if "# Parent kernel" in prompt and n % 2 == 0:
                # a search/replace edit on the line every variant has
                return (
                    "```\n<<<<<<< SEARCH\n    M, N = x.shape\n=======\n    M, N = x.shape  # edited\n"
                    ">>>>>>> REPLACE\n```"
                )
            return f"```python\n{kernel(n)}```"
        if kind == "reflect":
            action = re.search(r"visited action: (n\d+)", prompt)
            ops = (
                [{"op": "update", "node": action.group(1), "fields": {"priority": 0.5}, "reason": "scripted"}]
                if action
                else []
            )
            return "```json\n" + json.dumps({"ops": ops}) + "\n```"
        return "?"

    def faulty(self, fault: str, kind: str) -> tuple[str, bool]:
        """(text, truncated) for a content fault."""
        if fault == "empty":
            return "", False
        if fault == "nocode":
            return "I would write a kernel that processes one row per program.", False
        if fault == "badjson":
            return "I think the priority should go up a little.", False
        if fault == "truncated":
            return "```python\n" + kernel(0)[:300], True
        raise ValueError(fault)


def call_kind(prompt: str) -> str:
    m = re.findall(r"## Call: (\w+)", prompt)
    return m[-1] if m else "unknown"


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            _text(c.get("text", c.get("content", ""))) if isinstance(c, dict) else str(c) for c in content
        )
    return ""


class Handler(BaseHTTPRequestHandler):
    script: Script  # set on the server class

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout fault)
            pass

    def do_POST(self):  # noqa: N802
        script = self.server.script
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        path = self.path.split("?")[0]
        if path.endswith("/chat/completions"):
            api = "chat"
            system = "\n".join(
                _text(m["content"]) for m in body["messages"] if m["role"] in ("system", "developer")
            )
            user = "\n".join(
                _text(m["content"]) for m in body["messages"] if m["role"] not in ("system", "developer")
            )
        elif path.endswith("/responses"):
            api = "responses"
            system, user = body.get("instructions") or "", _text(body.get("input"))
        elif path.endswith("/messages"):
            api = "messages"
            system = _text(body.get("system"))
            user = "\n".join(_text(m["content"]) for m in body["messages"])
        else:
            return self._send(404, {"error": {"message": f"no route {path}"}})
        prompt = system + "\n" + user
        kind = call_kind(prompt)
        fault = script.take_fault(kind)
        record = {"path": path, "api": api, "kind": kind, "body": body, "fault": fault}
        script.requests.append(record)
        if fault in ("429", "500"):
            err = {
                "error": {
                    "message": f"injected {fault}",
                    "type": "rate_limit_error" if fault == "429" else "api_error",
                },
                "type": "error",
            }
            return self._send(int(fault), err, {"retry-after-ms": "1"})
        if fault == "timeout":
            time.sleep(script.slow_s)
        truncated = False
        if fault in ("empty", "nocode", "badjson", "truncated"):
            text, truncated = script.faulty(fault, kind)
        else:
            text = script.reply(kind, prompt)
        field = re.search(r"Your output fields are:\s*1\. `(\w+)`", prompt)
        if field and not truncated:  # a DSPy ChatAdapter prompt: answer in its field format
            text = f"[[ ## {field.group(1)} ## ]]\n{text}\n\n[[ ## completed ## ]]"
        total = count_tokens(prompt)
        out = count_tokens(text)
        cached = 0
        cached_marker = api != "messages" or "cache_control" in json.dumps(body.get("system"))
        if cached_marker and system in script.seen_prefixes:
            cached = count_tokens(system)
        written = count_tokens(system) if api == "messages" and cached == 0 and cached_marker else 0
        script.seen_prefixes.add(system)
        model = body.get("model", "m")
        if api == "chat":
            self._send(
                200,
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "length" if truncated else "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": total,
                        "completion_tokens": out,
                        "total_tokens": total + out,
                        "prompt_tokens_details": {"cached_tokens": cached},
                    },
                },
            )
        elif api == "responses":
            self._send(
                200,
                {
                    "id": "resp_1",
                    "object": "response",
                    "created_at": int(time.time()),
                    "model": model,
                    "status": "incomplete" if truncated else "completed",
                    "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
                    "output": [
                        {
                            "type": "message",
                            "id": "msg_1",
                            "status": "completed",
                            "role": "assistant",
                            "content": [{"type": "output_text", "text": text, "annotations": []}],
                        }
                    ],
                    "parallel_tool_calls": False,
                    "tool_choice": "auto",
                    "tools": [],
                    "usage": {
                        "input_tokens": total,
                        "input_tokens_details": {"cached_tokens": cached},
                        "output_tokens": out,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": total + out,
                    },
                },
            )
        else:
            fresh = total - cached - written
            self._send(
                200,
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "max_tokens" if truncated else "end_turn",
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": fresh,
                        "output_tokens": out,
                        "cache_creation_input_tokens": written,
                        "cache_read_input_tokens": cached,
                    },
                },
            )


class FakeLLM:
    """`with FakeLLM() as llm:` serves on llm.url (OpenAI base URL: llm.url + "/v1")."""

    def __init__(self):
        self.script = Script()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.script = self.script
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reset(self, faults: list[tuple[str, str]] = ()) -> Script:
        self.script.faults = deque(faults)
        self.script.requests.clear()
        self.script.served = 0
        self.script.seen_prefixes.clear()
        self.script.kernels = None
        return self.script

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
