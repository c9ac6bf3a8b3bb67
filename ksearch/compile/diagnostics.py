"""Turn compiler and Python errors into located `Diagnostic`s, never raw tracebacks.

Generic helpers any backend may use:

* `diagnostics_from_exception(exc, source_path)`: a SyntaxError, any exception raised by code in the
  candidate file (the deepest frame in that file locates it), or a Triton `CompilationError` (its
  node is relative to the jit function's source; it is mapped back to the file line).
* `diagnostics_from_compiler_output(text, source_path)`: `file:line:col: error: message` lines
  (MLIR, clang, hipcc) that name the candidate file.
* `diagnostics_from_ptxas(log, ptx, source_path)`: ptxas errors, which name PTX lines, mapped back
  to the candidate through the PTX's `.loc` / `.file` line info.
"""

from __future__ import annotations

import re
import textwrap
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from ksearch.evidence import Diagnostic

_MAX_MESSAGE = 2000  # characters; long compiler dumps belong in the compile log, not the packet
_LOCATED_LINE = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?P<sev>error|warning|note|remark)\s*:\s*(?P<msg>.*)$"
)


def diagnostics_from_exception(
    exc: BaseException, source_path: Path | str, source: str | None = None
) -> list[Diagnostic]:
    """Located diagnostics for an exception raised while importing, running or compiling a candidate.

    `source` is the candidate text (read from `source_path` when omitted); it is needed to map a
    Triton CompilationError, whose line numbers count from the jit function's `def`.
    """
    path = str(source_path)
    if isinstance(exc, SyntaxError):
        return [_from_syntax_error(exc, path)]
    compilation = _compilation_errors(exc)
    if compilation:
        text = source if source is not None else _read(path)
        located = _from_compilation_errors(compilation, path, text)
        if located:
            return located
    return [_from_traceback(exc, path)]


def diagnostics_from_compiler_output(text: str, source_path: Path | str) -> list[Diagnostic]:
    """`file:line[:col]: error|warning|note: message` lines that point into the candidate file."""
    wanted = _same_file_key(str(source_path))
    found: list[Diagnostic] = []
    seen: set[tuple[Any, ...]] = set()
    for raw in text.splitlines():
        match = _LOCATED_LINE.match(raw.strip())
        if match is None or _same_file_key(match["file"]) != wanted:
            continue
        severity = match["sev"] if match["sev"] in ("error", "warning") else "note"
        key = (int(match["line"]), match["col"], severity, match["msg"])
        if key in seen:
            continue
        seen.add(key)
        found.append(
            Diagnostic(
                file=str(source_path),
                line=int(match["line"]),
                column=int(match["col"]) if match["col"] else None,
                severity=severity,  # type: ignore[arg-type]
                message=_clip(match["msg"]),
            )
        )
    return found


def diagnostics_from_ptxas(log: str, ptx: str | None, source_path: Path | str) -> list[Diagnostic]:
    """ptxas `<file>, line N; error : message` lines, located in the candidate where the PTX says.

    A PTX line maps to the nearest `.loc <file> <line> <col>` above it whose `.file` is the
    candidate. Errors that do not map keep file=candidate and no line.
    """
    path = str(source_path)
    errors = re.findall(r"line (\d+); (error|warning)\s*:\s*(.+)", log)
    if not errors:
        return []
    ptx_lines = ptx.splitlines() if ptx else []
    files: dict[int, str] = {}
    # `.file 1 "path"`, or `.file 1 "dir" "name"` where the path is split in two.
    for number, first, second in re.findall(
        r'^\s*\.file\s+(\d+)\s+"([^"]*)"(?:\s+"([^"]*)")?', ptx or "", re.MULTILINE
    ):
        files[int(number)] = str(Path(first) / second) if second else first
    wanted = _same_file_key(path)
    found: list[Diagnostic] = []
    for ptx_line, severity, message in errors:
        line = column = None
        for index in range(min(int(ptx_line), len(ptx_lines)) - 1, -1, -1):
            loc = re.match(r"\s*\.loc\s+(\d+)\s+(\d+)\s+(\d+)", ptx_lines[index])
            if loc is None:
                continue
            if _same_file_key(files.get(int(loc.group(1)), "")) == wanted:
                line, column = int(loc.group(2)), int(loc.group(3)) or None
            break
        found.append(
            Diagnostic(
                file=path,
                line=line,
                column=column,
                severity=severity,
                message=_clip(f"ptxas: {message.strip()}"),
            )
        )
    return found


def exception_message(exc: BaseException) -> str:
    """`Type: message` on one line, with any notes added along the way."""
    text = " ".join(str(exc).split())
    notes = getattr(exc, "__notes__", None) or []
    head = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return _clip("; ".join([head, *(" ".join(str(n).split()) for n in notes)]))


def _from_syntax_error(exc: SyntaxError, path: str) -> Diagnostic:
    notes = getattr(exc, "__notes__", None) or []
    message = "; ".join([f"{type(exc).__name__}: {exc.msg}", *notes])
    return Diagnostic(file=path, line=exc.lineno, column=exc.offset, message=_clip(message))


def _from_traceback(exc: BaseException, path: str) -> Diagnostic:
    """Locate an exception at the deepest frame in the candidate file (or just name the file)."""
    frame = _deepest_frame_in(exc.__traceback__, path)
    cause = exc
    # A wrapper raised outside the file (e.g. by a library) may carry the candidate's frame in its cause.
    while frame is None and (cause.__cause__ or cause.__context__) is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        frame = _deepest_frame_in(cause.__traceback__, path)
    if frame is None:
        return Diagnostic(file=path, message=exception_message(exc))
    colno = getattr(frame, "colno", None)  # 0-based, Python 3.11+
    column = colno + 1 if isinstance(colno, int) else None
    return Diagnostic(file=path, line=frame.lineno, column=column, message=exception_message(exc))


def _deepest_frame_in(tb: TracebackType | None, path: str) -> traceback.FrameSummary | None:
    if tb is None:
        return None
    wanted = _same_file_key(path)
    hits = [f for f in traceback.extract_tb(tb) if _same_file_key(f.filename) == wanted]
    return hits[-1] if hits else None


def _compilation_errors(exc: BaseException) -> list[Any]:
    """The chain of Triton CompilationErrors, outermost first (the callee's error is the cause)."""
    try:
        from triton.compiler.errors import CompilationError
    except ImportError:  # no triton: nothing to unwrap
        return []
    chain: list[Any] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 64:
        if isinstance(current, CompilationError):
            chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _from_compilation_errors(chain: list[Any], path: str, source: str | None) -> list[Diagnostic]:
    """The innermost CompilationError that maps into the candidate file, with the root message,
    then a note for each call site that led to it (outer jit functions)."""
    if source is None:
        return []
    message = _root_message(chain)
    located: list[Diagnostic] = []
    for err in reversed(chain):  # innermost first
        place = _place(err, source)
        if place is None:
            continue  # e.g. a jit function of triton.language itself; try the caller
        line, column = place
        if not located:
            located.append(Diagnostic(file=path, line=line, column=column, message=message))
        elif (line, column) != (located[-1].line, located[-1].column):
            located.append(
                Diagnostic(
                    file=path,
                    line=line,
                    column=column,
                    severity="note",
                    message="in the jit function called from here",
                )
            )
    return located


def _place(err: Any, source: str) -> tuple[int, int | None] | None:
    """File line and 1-based column of a CompilationError's node, if its function is in the file."""
    node = getattr(err, "node", None)
    lineno = getattr(node, "lineno", None)
    if not isinstance(lineno, int) or not getattr(err, "src", None):
        return None
    placed = _locate_function(err.src, source)
    if placed is None:
        return None
    def_line, indent = placed
    col = getattr(node, "col_offset", None)
    return def_line + lineno - 1, (indent + col + 1 if isinstance(col, int) else None)


def _root_message(chain: list[Any]) -> str:
    for err in reversed(chain):
        text = getattr(err, "error_message", None)
        if text:
            return _clip(f"{type(err).__name__}: {' '.join(str(text).split())}")
    inner: BaseException = chain[-1]
    cause = inner.__cause__ or inner.__context__
    if cause is not None:
        return exception_message(cause)
    return f"{type(inner).__name__} (no message)"


def _locate_function(src: str, source: str) -> tuple[int, int] | None:
    """(1-based line of `def`, indentation) of a jit function's dedented source inside the file."""
    src_lines = [line.rstrip() for line in src.splitlines()]
    if not src_lines:
        return None
    match = re.match(r"def\s+(\w+)", src_lines[0])
    if match is None:
        return None
    file_lines = source.splitlines()
    def_pattern = re.compile(rf"^(?P<indent>\s*)def\s+{re.escape(match.group(1))}\s*\(")
    for index, line in enumerate(file_lines):
        found = def_pattern.match(line)
        if found is None:
            continue
        block = textwrap.dedent("\n".join(file_lines[index : index + len(src_lines)])).splitlines()
        if [b.rstrip() for b in block] == src_lines:
            return index + 1, len(found.group("indent"))
    return None


def _same_file_key(path: str) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return path


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
