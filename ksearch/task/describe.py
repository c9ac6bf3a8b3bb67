"""What `ksearch tasks list` and `ksearch tasks show NAME` print: plain dicts and rich renderables."""

from __future__ import annotations

from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ksearch.errors import TaskError
from ksearch.task.contract import Task
from ksearch.task.load import list_tasks, load_task
from ksearch.task.spec import NormalGen, generator_summary


def _shape_text(shape: list[int | str]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def summarize_task(task: Task) -> dict[str, Any]:
    """One row of `ksearch tasks list`."""
    spec = task.spec
    return {
        "name": spec.name,
        "op_family": spec.op_family,
        "dtypes": list(spec.dtypes),
        "workloads": len(spec.workloads),
        "cpu_workloads": sum(1 for wl in spec.workloads if wl.cpu),
        "models": spec.models,
        "entry": spec.entry,
        "description": " ".join(spec.description.split()),
    }


def list_task_summaries() -> list[dict[str, Any]]:
    """A summary per built-in task; a task that fails to load gets {"name", "error"} instead."""
    rows: list[dict[str, Any]] = []
    for name in list_tasks():
        try:
            rows.append(summarize_task(load_task(name)))
        except TaskError as exc:
            rows.append({"name": name, "error": str(exc)})
    return rows


def _short_dtype(name: str) -> str:
    """`fp16` for float16, `bf16` for bfloat16; a dtype the profiles do not name stays as written."""
    from ksearch.errors import TargetError
    from ksearch.target.profile import normalize_dtype

    try:
        return normalize_dtype(name)
    except TargetError:
        return name


def _reflow(text: str) -> str:
    """A task description with its source line breaks joined, so that it wraps to the console: a
    break stays after a line ending in ':' or ';' (a formula follows) and between paragraphs."""
    out: list[str] = []
    for line in text.strip().splitlines():
        line = line.strip()
        if out and line and out[-1] and not out[-1].endswith((":", ";")):
            out[-1] += " " + line
        else:
            out.append(line)
    return "\n".join(out)


def _clip(text: str, width: int) -> str:
    """`text` cut at the last word boundary that fits `width` columns, with an ellipsis if cut."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    if width < 2:
        return "…"[:width]
    cut = text[: width - 1]
    if text[width - 1] != " " and " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


class TaskList:
    """`ksearch tasks list`: one line per task (name, op family, dtypes, the description cut at a
    word to fit the console), so the list is as long as the number of tasks plus a header and a
    footer at any width."""

    COLUMNS = ("name", "family", "dtypes", "description")

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def _cells(self, row: dict[str, Any]) -> tuple[str, str, str, str]:
        if "error" in row:
            return row["name"], "invalid", "", row["error"]
        dtypes = ",".join(dict.fromkeys(_short_dtype(str(d)) for d in row["dtypes"]))
        return row["name"], row["op_family"], dtypes, row.get("description", "")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cells = [self._cells(r) for r in self.rows]
        widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(self.COLUMNS[:3])]
        rest = options.max_width - sum(widths) - 2 * len(widths)

        def line(values: tuple[str, ...], style: str = "", error: bool = False) -> Text:
            text = Text(no_wrap=True, overflow="ellipsis", end="")
            for value, w in zip(values[:3], widths):
                text.append(f"{value:<{w}}  ", style="red" if error and value == "invalid" else style)
            if rest >= 12:
                text.append(_clip(values[3], rest), style="red" if error else style)
            text.rstrip()
            return text

        out = Text(no_wrap=True, overflow="ellipsis")
        out.append_text(line(self.COLUMNS, style="bold"))
        for row, values in zip(self.rows, cells):
            out.append("\n")
            out.append_text(line(values, error="error" in row))
        out.append("\n")
        out.append(
            _clip(f"({len(self.rows)} tasks; `ksearch tasks show NAME` for one in full)", options.max_width)
        )
        yield out


def render_task_list(rows: list[dict[str, Any]]) -> TaskList:
    """`list_task_summaries()` rows, one line each."""
    return TaskList(rows)


def describe_task(task: Task, dtype: str | None = None) -> dict[str, Any]:
    """Everything `ksearch tasks show` displays, as plain JSON-able data.

    Per-workload FLOPs, bytes and arithmetic intensity use dtype variant `dtype` (default: the first).
    """
    spec = task.spec
    variant = dtype or task.default_dtype
    if variant not in spec.dtypes:
        raise TaskError(
            f"task {task.name}: dtype '{variant}' is not one of its variants; use one of: {', '.join(spec.dtypes)}"
        )

    def tensor_row(name: str, role: str) -> dict[str, Any]:
        t = spec.tensors[name]
        row: dict[str, Any] = {
            "name": name,
            "role": role,
            "dtype": t.dtype,
            "shape": [d if isinstance(d, int) else str(d) for d in t.shape],
            "description": t.description,
        }
        if role == "input":
            row["default_distribution"] = generator_summary(t.distribution or NormalGen(kind="normal"))
            if t.distinct_last_dim:
                row["distinct_last_dim"] = True
        return row

    workloads = []
    for wl in spec.workloads:
        flops = task.flops(wl, variant)
        moved = task.bytes(wl, variant)
        workloads.append(
            {
                "name": wl.name,
                "cpu": wl.cpu,
                "axes": task.axes_for(wl),
                "flops": flops,
                "bytes": moved,
                "arithmetic_intensity": flops / moved if moved else None,
                "note": wl.note,
            }
        )
    return {
        "name": spec.name,
        "description": spec.description,
        "op_family": spec.op_family,
        "models": spec.models,
        "entry": spec.entry,
        "languages": list(spec.languages),
        "dtypes": list(spec.dtypes),
        "default_dtype": task.default_dtype,
        "dtype_shown": variant,
        "axes": {
            n: ({"kind": "const", "value": a.value} if a.kind == "const" else {"kind": "var"})
            | ({"description": a.description} if a.description else {})
            for n, a in spec.axes.items()
        },
        "params": dict(spec.params),
        "inputs": [tensor_row(n, "input") for n in spec.inputs],
        "outputs": [tensor_row(n, "output") for n in spec.outputs],
        "distributions": {
            name: {inp: generator_summary(gen) for inp, gen in overrides.items()}
            for name, overrides in spec.distributions.items()
        },
        "tolerances": {d: t.model_dump() for d, t in spec.tolerances.items()},
        "flops_formula": str(spec.flops_formula),
        "bytes_formula": str(spec.bytes_formula),
        "workloads": workloads,
        "reference": str(task.reference_path),
        "target_only": spec.target_only.model_dump() if spec.target_only is not None else None,
    }


def render_task(task: Task, dtype: str | None = None) -> Group:
    """`ksearch tasks show NAME` as rich panels and tables."""
    info = describe_task(task, dtype)

    # Wrap at word boundaries even where the console does not (a piped `out` soft-wraps, which
    # would leave the panel to crop each line mid-word).
    header = Text(no_wrap=False, overflow="fold")
    header.append(f"{info['name']}", style="bold")
    header.append(f"  ({info['op_family']})\n")
    header.append(_reflow(info["description"]) + "\n\n")
    header.append("models: ", style="bold")
    header.append(info["models"] + "\n")
    header.append("entry: ", style="bold")
    header.append(info["entry"] + "   (destination-passing: inputs, then outputs written in place)\n")
    header.append("dtypes: ", style="bold")
    header.append(
        ", ".join(info["dtypes"]) + f"   (default {info['default_dtype']}; $dtype = the chosen variant)\n"
    )
    header.append("languages: ", style="bold")
    header.append(", ".join(info["languages"]) + "\n")
    axes = ", ".join(
        f"{n}={a['value']}" if a["kind"] == "const" else f"{n} (var)" for n, a in info["axes"].items()
    )
    header.append("axes: ", style="bold")
    header.append(axes + "\n")
    if info["params"]:
        header.append("params: ", style="bold")
        header.append(", ".join(f"{k}={v}" for k, v in info["params"].items()) + "\n")
    header.append("flops: ", style="bold")
    header.append(info["flops_formula"] + "\n")
    header.append("bytes: ", style="bold")
    header.append(info["bytes_formula"])
    if info["target_only"]:
        header.append("\ntarget-only: ", style="bold red")
        header.append(
            f"verification needs {' or '.join(info['target_only']['targets'])}: {info['target_only']['reason']}"
        )

    tensors = Table(title="contract", show_lines=False)
    for col in ("tensor", "role", "dtype", "shape", "default distribution", "description"):
        tensors.add_column(col, overflow="fold")
    for row in [*info["inputs"], *info["outputs"]]:
        tensors.add_row(
            row["name"],
            row["role"],
            row["dtype"],
            _shape_text(row["shape"]),
            row.get("default_distribution", "") + (" distinct" if row.get("distinct_last_dim") else ""),
            row["description"],
        )

    dists = Table(title="input distributions (overrides of the defaults)")
    dists.add_column("name")
    dists.add_column("overrides", overflow="fold")
    for name, overrides in info["distributions"].items():
        dists.add_row(name, "; ".join(f"{k}: {v}" for k, v in overrides.items()) or "(defaults)")

    tols = Table(title="tolerances (|out-ref| <= atol + rtol*|ref|)")
    for col in ("dtype", "atol", "rtol", "matched_ratio", "max_error_cap"):
        tols.add_column(col)
    for dtype_name, tol in info["tolerances"].items():
        tols.add_row(dtype_name, *(f"{tol[k]:g}" for k in ("atol", "rtol", "matched_ratio", "max_error_cap")))

    wls = Table(title=f"workloads (FLOPs and bytes for {info['dtype_shown']})")
    for col in ("workload", "cpu", "axes", "FLOPs", "bytes", "FLOP/byte"):
        wls.add_column(col, overflow="fold")
    for wl in info["workloads"]:
        ai = wl["arithmetic_intensity"]
        wls.add_row(
            wl["name"],
            "yes" if wl["cpu"] else "",
            " ".join(f"{k}={v}" for k, v in wl["axes"].items()),
            _si(wl["flops"], "FLOP"),
            _si(wl["bytes"], "B"),
            f"{ai:.3g}" if ai is not None else "-",
        )

    return Group(Panel(header, title=f"task {info['name']}"), tensors, dists, tols, wls)
