"""The strategy-template contract: a parameterised source generator for one op family strategy.

A `Template` is one answer to one strategy decision of an op family ("row mapping: one row per
program, whole row in registers"), written down as a function from a task name and a knob setting
to a complete candidate module (destination-passing `run(*inputs, *outputs)`, Triton kernels, torch
only for sizes, views and allocation). The knob space is explicit: each knob lists its allowed
values, the first being the default, so a search can enumerate, sample and mutate settings without
knowing anything about the kernel.

Helpers shared by the family modules live here too: the provenance header, task parameters, and a
few source snippets every family uses (the SM-count query of persistent grids).
"""

from __future__ import annotations

import functools
import itertools
import json
import random
from collections.abc import Callable, Set
from dataclasses import dataclass, field

# Cache and eviction hints: knob value -> (load kwargs for streamed data, load kwargs for reused data).
EVICT_HINTS: dict[str, tuple[str, str]] = {
    "none": ("", ""),
    "stream": (', eviction_policy="evict_first"', ', eviction_policy="evict_last"'),
}

# Used by the persistent-grid templates: the SM/CU count of the tensor's device, and on the CPU
# (interpreter runs and ahead-of-time compiles, where the grid does not matter) the H100's 132.
NUM_SMS_HELPER = """

def _num_sms(t: torch.Tensor) -> int:
    if t.is_cuda:
        return torch.cuda.get_device_properties(t.device).multi_processor_count
    return 132
"""


@dataclass(frozen=True)
class Template:
    """One strategy of one op family as a source generator over an explicit knob space."""

    id: str
    tasks: tuple[str, ...]
    decision: str
    title: str
    description: str
    rationale: str
    difficulty: int
    expected_speedup: float
    knobs: dict[str, tuple]
    generate: Callable[[str, dict], str] = field(repr=False, compare=False)
    constraint: Callable[[dict], bool] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.difficulty <= 5:
            raise ValueError(f"template {self.id}: difficulty {self.difficulty} is not in 1..5")
        for name, values in self.knobs.items():
            if not isinstance(values, tuple) or not values:
                raise ValueError(f"template {self.id}: knob {name} needs a non-empty tuple of values")
            if len(set(map(_typed, values))) != len(values):
                raise ValueError(f"template {self.id}: knob {name} lists a value twice")

    def __hash__(self) -> int:
        return hash(self.id)

    # ---- the knob space ------------------------------------------------------------------------

    def default_knobs(self) -> dict:
        """Every knob at its first (default) value."""
        return {name: values[0] for name, values in self.knobs.items()}

    def complete(self, knobs: dict | None) -> dict:
        """`knobs` over the defaults, validated: unknown names and values raise ValueError."""
        knobs = dict(knobs or {})
        unknown = sorted(set(knobs) - set(self.knobs))
        if unknown:
            raise ValueError(
                f"template {self.id}: unknown knob(s) {', '.join(unknown)}; "
                f"its knobs are {', '.join(self.knobs) or 'none'}"
            )
        for name, value in knobs.items():
            allowed = self.knobs[name]
            if _typed(value) not in {_typed(v) for v in allowed}:
                raise ValueError(f"template {self.id}: knob {name}={value!r} is not one of {list(allowed)}")
        return {**self.default_knobs(), **knobs}

    def valid(self, knobs: dict) -> bool:
        """Cheap static constraints on a (complete or partial) knob setting; True if there are none.

        Unknown knobs or values are not valid either. `render` does not call this: a search may
        render an invalid setting on purpose, to see it fail."""
        try:
            full = self.complete(knobs)
        except ValueError:
            return False
        return self.constraint(full) if self.constraint is not None else True

    def settings(self) -> list[dict]:
        """Every valid knob setting, in knob order (spaces are small: a few thousand at most)."""
        return _settings(self)[0]

    def untried(self, tried: Set[str]) -> list[dict]:
        """The valid settings whose `knob_key` is not in `tried`, in knob order."""
        settings, keys = _settings(self)
        return [s for s, key in zip(settings, keys) if key not in tried]

    def sample_knobs(self, rng: random.Random, tries: int = 1000) -> dict:
        """A uniformly drawn knob setting that `valid()` accepts (the default if none is found)."""
        for _ in range(tries):
            knobs = {name: rng.choice(values) for name, values in self.knobs.items()}
            if self.valid(knobs):
                return knobs
        return self.default_knobs()

    def neighbours(self, knobs: dict) -> list[dict]:
        """Valid settings one step away (local refinement): one numeric knob moved to the next smaller
        or larger allowed value, or one categorical knob (strings, bools, "auto" mixed with numbers)
        set to any other allowed value."""
        full = self.complete(knobs)
        out = []
        for name, values in self.knobs.items():
            current = full[name]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                ordered = sorted(values)
                i = ordered.index(current)
                steps = [ordered[j] for j in (i - 1, i + 1) if 0 <= j < len(ordered)]
            else:
                steps = [v for v in values if _typed(v) != _typed(current)]
            for value in steps:
                cand = {**full, name: value}
                if self.valid(cand):
                    out.append(cand)
        return out

    # ---- rendering -------------------------------------------------------------------------------

    def render(self, task_name: str, knobs: dict | None = None) -> str:
        """The candidate module for `task_name` with `knobs` (missing knobs take their defaults).

        Raises ValueError for a task this template does not implement or a bad knob name or value.
        The source starts with a comment header naming the template, task and knobs."""
        if task_name not in self.tasks:
            raise ValueError(f"template {self.id} implements {', '.join(self.tasks)}, not {task_name!r}")
        full = self.complete(knobs)
        body = self.generate(task_name, full)
        header = (
            f"# ksearch template: {self.id}\n"
            f"# task: {task_name}\n"
            f"# knobs: {json.dumps(full, sort_keys=True)}\n"
        )
        return header + body.lstrip("\n")


def knob_key(knobs: dict) -> str:
    """A knob setting's identity: what the search remembers as tried."""
    return ",".join(f"{k}={knobs[k]!r}" for k in sorted(knobs))


@functools.cache
def _settings(t: Template) -> tuple[list[dict], list[str]]:
    """The template's valid settings and their keys, computed once."""
    names = list(t.knobs)
    every = (dict(zip(names, values)) for values in itertools.product(*(t.knobs[n] for n in names)))
    settings = [k for k in every if t.valid(k)]
    return settings, [knob_key(k) for k in settings]


def _typed(value: object) -> tuple[str, object]:
    # 1 == True in Python; a knob value must match in type too.
    return (type(value).__name__, value)


IMPORTS = "import torch\nimport triton\nimport triton.language as tl\n"


def module(t: Template, task_name: str, kernels: str, run: str, extra: str = "") -> str:
    """A candidate's source: docstring (the template's title and description), imports, `extra`
    (helpers, further imports), the kernels, then `run` (the whole entry function)."""
    doc = f'"""{t.title}.\n\n{t.description}\n\ntask: {task_name}\n"""\n'
    return doc + "\n" + IMPORTS + extra + "\n\n" + kernels + "\n\n" + run


def task_param(task_name: str, name: str, default: float) -> float:
    """A numeric parameter of a task (eps), read off its definition; `default` when absent."""
    from ksearch.task import load_task

    value = load_task(task_name).spec.params.get(name, default)
    return float(value) if isinstance(value, (int, float)) else default


def warps_expr(knob: object, block_expr: str, per_warp: int = 512, cap: int = 16) -> str:
    """Python source for the launch's num_warps over a tile of `block_expr` elements.

    "auto": one warp per `per_warp` elements, clamped to 1..cap. A number: that many warps, raised
    where needed (up to `cap`) so no thread holds more than MAX_PER_THREAD elements of the tile: a
    whole-row block of a 128K-wide row on one warp would take the compiler minutes to spill."""
    if knob == "auto":
        return f"max(1, min({cap}, ({block_expr}) // {per_warp}))"
    return f"max({int(knob)}, min({cap}, ({block_expr}) // {32 * MAX_PER_THREAD}))"  # type: ignore[call-overload]


# Elements of a register tile per thread beyond which an explicit num_warps knob is raised.
MAX_PER_THREAD = 256
# Elements of a [ROWS, BLOCK] register tile beyond which a rows-per-program knob is lowered.
MAX_TILE = 16384


def rows_expr(knob: int, block_expr: str) -> str:
    """Python source for rows per program: the knob, lowered so a tile holds at most MAX_TILE elements
    (at least one row)."""
    return f"max(1, min({int(knob)}, {MAX_TILE} // ({block_expr})))"
