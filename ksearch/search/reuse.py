"""Earlier evaluations of identical candidates, reused instead of measured again (`eval.reuse`).

Two searches over the same template space meet many of the same candidates: comparing strategies
over several seeds at a hundred evaluations each would otherwise time each of them again. A packet
is reused only when nothing its verdict depended on differs: the same source bytes (sha256), task,
dtype and primary target, an earlier run verified and timed with the same evaluation settings, the
same GPU (by name; both None on a CPU), driver, toolchain and ksearch version. The reused packet
keeps its own figures, durations and time of creation and names the run it came from
(`reused_from`); compile and audit run again for this run's targets. A run listed whose settings
never matched is refused before the new run directory is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ksearch
from ksearch.errors import ConfigError
from ksearch.evidence import EvidencePacket
from ksearch.log.history import read_rows
from ksearch.log.rows import RunResume, RunStart

MEASURED_WITH = ("gpu_name", "driver", "toolchain")  # the environment a measurement depends on


def measured_with(environment: Mapping[str, Any]) -> dict:
    """The parts of an environment (a packet's, or `Evaluator.environment`) a measurement depends on."""
    return {k: environment.get(k) for k in MEASURED_WITH}


def _eval_settings(config: dict) -> dict:
    """The evaluation settings a verdict and its figures depend on."""
    return {k: v for k, v in (config.get("eval") or {}).items() if k not in ("reuse", "targets")}


def settings_of(task: str | None, dtype: str | None, device: str, config: dict) -> dict:
    return {"task": task, "dtype": dtype, "device": device, "eval": _eval_settings(config)}


class Reuse:
    """The primary-target packets of earlier runs made with this run's settings, by source hash."""

    def __init__(self, run_dirs: list[str], want: dict, primary: str):
        """`want`: this run's task, dtype, device and eval settings (`settings_of`). ConfigError for a
        run none of which was made with them (checked before the run directory exists)."""
        self.packets: dict[str, list[tuple[EvidencePacket, str]]] = {}
        for run_dir in map(Path, run_dirs):
            if not run_dir.is_dir():
                raise ConfigError(f"eval.reuse: {run_dir} is not a run directory")
            have: dict = {}
            matched = False
            for row in read_rows(run_dir, RunStart.KIND, RunResume.KIND, "attempt"):
                if isinstance(row.payload, RunStart):  # a resume keeps the task and dtype
                    have = settings_of(
                        row.payload.task, row.payload.dtype, row.payload.device, row.payload.config
                    )
                elif isinstance(row.payload, RunResume):
                    have = settings_of(
                        have.get("task"), have.get("dtype"), row.payload.device, row.payload.config
                    )
                elif isinstance(row.payload, EvidencePacket) and have == want:
                    p = row.payload
                    if p.candidate.target == primary and p.environment.ksearch_version == ksearch.__version__:
                        self.packets.setdefault(p.candidate.source_hash, []).append((p, str(run_dir)))
                matched |= have == want
            if not matched:
                raise ConfigError(
                    f"eval.reuse: {run_dir} was evaluated with other settings (task, dtype, device or "
                    "eval block); reuse only runs made with this run's"
                )

    def get(self, source_hash: str, here: dict) -> EvidencePacket | None:
        """The earliest packet of this source measured on a machine like `here` (`measured_with`)."""
        for packet, run_dir in self.packets.get(source_hash, []):
            if measured_with(packet.environment.model_dump()) == here:
                return packet.model_copy(update={"reused_from": packet.reused_from or run_dir})
        return None
