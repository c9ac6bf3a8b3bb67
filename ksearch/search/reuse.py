"""Earlier evaluations of identical candidates, reused instead of measured again (`eval.reuse`).

Two searches over the same template space meet many of the same candidates: comparing strategies
over several seeds at a hundred evaluations each would otherwise time each of them again. A packet
is reused only when nothing its verdict depended on differs: the same source bytes (sha256), task,
dtype and primary target, an earlier run verified and timed with the same evaluation settings, the
same GPU (by name; both None on a CPU), driver, toolchain and ksearch version. The reused packet
keeps its own figures, durations and time of creation and names the run it came from
(`reused_from`); compile and audit run again for this run's targets.
"""

from __future__ import annotations

from pathlib import Path

import ksearch
from ksearch.errors import ConfigError
from ksearch.evidence import EvidencePacket
from ksearch.log.history import read_rows
from ksearch.log.rows import RunResume, RunStart


def _eval_settings(config: dict) -> dict:
    """The evaluation settings a verdict and its figures depend on."""
    return {k: v for k, v in (config.get("eval") or {}).items() if k not in ("reuse", "targets")}


def _measured_with(packet: EvidencePacket) -> dict | None:
    env = packet.environment
    if env.ksearch_version != ksearch.__version__:
        return None
    return {"gpu_name": env.gpu_name, "driver": env.driver, "toolchain": env.toolchain}


def settings_of(task: str | None, dtype: str | None, device: str, config: dict) -> dict:
    return {"task": task, "dtype": dtype, "device": device, "eval": _eval_settings(config)}


class Reuse:
    """The primary-target packets of earlier runs, by source hash, where their settings match."""

    def __init__(self, run_dirs: list[str], want: dict, primary: str, measured_with: dict):
        """`want`: this run's task, dtype, device and eval settings (`settings_of`); `measured_with`:
        this machine's GPU, driver and toolchain (`Evaluator.measured_with`)."""
        self.packets: dict[str, tuple[EvidencePacket, str]] = {}
        self.skipped: list[str] = []  # runs (or parts) made with other settings
        for run_dir in map(Path, run_dirs):
            if not run_dir.is_dir():
                raise ConfigError(f"eval.reuse: {run_dir} is not a run directory")
            have: dict = {}
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
                    if p.candidate.target == primary and _measured_with(p) == measured_with:
                        self.packets.setdefault(p.candidate.source_hash, (p, str(run_dir)))
                if have != want and str(run_dir) not in self.skipped:
                    self.skipped.append(str(run_dir))

    def get(self, source_hash: str) -> EvidencePacket | None:
        hit = self.packets.get(source_hash)
        if hit is None:
            return None
        packet, run_dir = hit
        return packet.model_copy(update={"reused_from": packet.reused_from or run_dir})

    def __len__(self) -> int:
        return len(self.packets)
