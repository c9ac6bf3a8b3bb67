"""A small search run's config for tests: rmsnorm on the CPU, four evaluations, one target."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SMALL_RUN: dict[str, Any] = {
    "task": "rmsnorm",
    "dtype": "float16",
    "targets": ["h100"],
    "device": "cpu",
    "seed": 3,
    "budget": {"evaluations": 4, "wall_s": 600},
    "search": {"islands": 2, "migrate_every": 2, "stagnation": 1, "max_per_visit": 2, "batch": 2},
    "eval": {"seeds": [0], "workloads": ["llama3_8b_decode_m1", "gpt_oss_m7_n2880"], "targets": "best"},
}
# LLM proposer tests search one island: fewer calls to script
ONE_ISLAND = {**SMALL_RUN["search"], "islands": 1}


def write_run_config(tmp: Path, base: dict[str, Any] = SMALL_RUN, **changes: Any) -> Path:
    """`base` with top-level fields replaced by `changes`, as tmp/run.yaml."""
    path = Path(tmp) / "run.yaml"
    path.write_text(yaml.safe_dump({**copy.deepcopy(base), **changes}))
    return path
