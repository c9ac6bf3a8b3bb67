"""Reading an LLM's replies: a plan (JSON), a candidate module (full, or search/replace edits on
the parent) and an edit script (JSON). Each parser returns a value or raises `ReplyError`, whose
message is written for the model: it goes back into the retry prompt as is."""

from __future__ import annotations

import ast
import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ksearch.errors import KsearchError, describe_validation_error
from ksearch.propose.prompt import MAX_ACTIONS, MAX_DECISIONS
from ksearch.worldmodel import EditOp, WorldModel

_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.S)
_EDIT = re.compile(r"<<<<<<< SEARCH\n(.*?)\n?=======\n(.*?)\n?>>>>>>> REPLACE", re.S)


class ReplyError(KsearchError):
    """A reply that cannot be used; the message says what to send instead (for edits that did not
    apply: the complete module)."""


class ActionSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    rationale: str = ""
    difficulty: int = Field(default=3, ge=1, le=5)
    expected_speedup: float = Field(default=1.0, gt=0, le=1000)
    priority: float = Field(default=0.5, ge=0, le=1)


class DecisionSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: str = Field(min_length=1, max_length=200)
    actions: list[ActionSpec] = Field(min_length=1, max_length=MAX_ACTIONS)


class Plan(BaseModel):
    model_config = ConfigDict(extra="ignore")
    decisions: list[DecisionSpec] = Field(min_length=1, max_length=MAX_DECISIONS)


class EditScript(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ops: list[EditOp]


def check_finish(text: str, finish: str | None) -> None:
    if not text.strip():
        raise ReplyError("the reply was empty")
    if finish == "length":
        raise ReplyError("the reply was cut off at the output-token limit (truncated); reply more briefly")


def extract_json(text: str) -> object:
    """The JSON value of a ```json block, or of the whole reply, or of its outermost {...}."""
    blocks = [body for lang, body in _FENCE.findall(text) if lang.lower() in ("json", "")]
    candidates = blocks + [text]
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{") : text.rindex("}") + 1])
    first: json.JSONDecodeError | None = None
    for c in candidates:
        try:
            return json.loads(c)
        except json.JSONDecodeError as e:
            first = first or e
    assert first is not None  # the whole reply is always a candidate
    raise ReplyError(
        f"the reply is not JSON ({first.msg} at line {first.lineno} column {first.colno}); "
        "reply with one JSON object in a ```json block"
    )


def parse_plan(text: str) -> Plan:
    try:
        return Plan.model_validate(extract_json(text))
    except ValidationError as e:
        raise ReplyError(f"the plan does not match the schema: {describe_validation_error(e)}") from None


def parse_edit_script(text: str, wm: WorldModel) -> list[EditOp]:
    """Ops that apply to `wm` as one edit; attach is the loop's, never the proposer's."""
    data = extract_json(text)
    if isinstance(data, list):
        data = {"ops": data}
    try:
        ops = EditScript.model_validate(data).ops
    except ValidationError as e:
        raise ReplyError(
            f"the edit script does not match the schema: {describe_validation_error(e)}"
        ) from None
    if any(op.op == "attach" for op in ops):
        raise ReplyError("attach is not yours to use: solutions are attached by the harness from evaluations")
    errors = wm.validate(ops)
    if errors:
        raise ReplyError("the edit script was rejected by the world model: " + " | ".join(errors))
    return ops


def parse_module(text: str, parent: str | None, entry: str, args: list[str]) -> tuple[str, str]:
    """(source, how) from a reply: search/replace edits applied to `parent`, or a full module."""
    if "<<<<<<< SEARCH" in text:
        if parent is None:
            raise ReplyError(
                "search/replace edits need a parent kernel and none was shown; reply with the complete module"
            )
        source, how = apply_edits(parent, text), "search/replace edits on the parent"
    else:
        blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
        code = [b for lang, b in blocks if lang in ("python", "py", "")]
        if not code:
            if re.search(r"```[A-Za-z]*\n", text):
                raise ReplyError(
                    "the reply ends inside a code block (truncated?); reply with the complete module"
                )
            raise ReplyError("the reply has no ```python code block; reply with the complete module in one")
        with_entry = [b for b in code if re.search(rf"^def {re.escape(entry)}\s*\(", b, re.M)]
        source, how = max(with_entry or code, key=len), "a complete module"
    check_module(source, entry, args)
    return source if source.endswith("\n") else source + "\n", how


def apply_edits(parent: str, text: str) -> str:
    edits = _EDIT.findall(text)
    if not edits:
        raise ReplyError(
            "the search/replace edits are malformed: use <<<<<<< SEARCH, =======, >>>>>>> REPLACE lines"
        )
    source = parent
    for k, (search, replace) in enumerate(edits):
        n = source.count(search) if search else 0
        if n != 1:
            found = "not found" if n == 0 else f"found {n} times"
            raise ReplyError(
                f"search/replace edit {k}: its SEARCH text was {found} in the parent kernel; "
                "reply with the complete module instead"
            )
        source = source.replace(search, replace, 1)
    return source


def check_module(source: str, entry: str, args: list[str]) -> None:
    """The module parses and its top-level `def entry` can be called as entry(*args), the test the
    compile step makes with inspect.signature(entry).bind(*args) once the module is imported (the
    harness's static `static:entry` check only asks that the name is bound, not how it is called)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ReplyError(f"the module does not parse: line {e.lineno}: {e.msg} (truncated?)") from None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry]
    if not defs:
        raise ReplyError(f"the module defines no top-level `def {entry}({', '.join(args)})`")
    sig = defs[-1].args
    positional = [a.arg for a in sig.posonlyargs + sig.args]
    required = len(positional) - len(sig.defaults)  # defaults belong to the last positional parameters
    if (
        not (required <= len(args) and (len(args) <= len(positional) or sig.vararg))
        or None in sig.kw_defaults
    ):
        raise ReplyError(
            f"wrong entry signature: def {entry}({ast.unparse(sig)}) but the task's entry is "
            f"{entry}({', '.join(args)}) (inputs, then outputs)"
        )
