"""The driver's side of the cluster: connect to Ray, place the evaluator actors, evaluate batches.

Ray does the scheduling: each actor asks for one GPU (`num_gpus=1`), or one CPU on a cluster
without GPUs, and Ray places it; `ray.wait` hands back whichever evaluation finishes first, and the
idle actor takes the next candidate of the batch. Each actor evaluates one candidate at a time, so a
GPU times one kernel at a time. Results are returned in the batch's order (candidate ids), whatever
the order they finished in, so a run's log does not depend on which actor was faster.

Faults: when an evaluation's actor dies (the process, or its node: `RayActorError` and kin), the
actor is replaced by a new one and the candidate goes back to the front of the queue, up to
`cluster.retries` times; each loss and each replacement is an `infra_event` the driver logs before
the candidate's attempt. Only a verdict the harness reached is the candidate's; a candidate whose
evaluators kept dying gets `skipped:evaluator_lost`, never `worker_crash`. A replacement that cannot
be placed within `cluster.start_timeout_s` shrinks the pool; a pool with no evaluator left raises
`EvaluatorsLost`, which stops the run cleanly (resumable: the same candidates are proposed again).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ray
from ray.exceptions import (
    GetTimeoutError,
    LocalRayletDiedError,
    NodeDiedError,
    ObjectLostError,
    RayActorError,
    RayTaskError,
    WorkerCrashedError,
)

import ksearch
from ksearch.cluster.actor import EvaluatorHost
from ksearch.cluster.jobs import EvalRequest, TaskBundle
from ksearch.errors import ConfigError
from ksearch.evidence import EvidencePacket, FailureClass
from ksearch.harness.evaluate import unevaluated_packet
from ksearch.log.rows import InfraEvent
from ksearch.search.config import ClusterSettings
from ksearch.search.pipeline import EvalJob, EvalSpec, Evaluated, EvaluatorsLost
from ksearch.task import Task

# What says the evaluator, not the candidate, failed: the actor's process or node is gone.
LOST = (RayActorError, WorkerCrashedError, ObjectLostError, NodeDiedError, LocalRayletDiedError)
CLOSE_S = 10.0  # seconds an actor may take to stop its worker processes before it is killed


@dataclass
class Slot:
    index: int
    actor: Any  # a Ray ActorHandle of EvaluatorHost
    info: dict[str, Any]  # EvaluatorHost.describe()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _error_line(e: BaseException) -> str:
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    return f"{type(e).__name__}: {first}"[:500]


class RayPool:
    """Evaluator actors on a Ray cluster, started at construction (see the module docstring)."""

    def __init__(
        self, settings: ClusterSettings, *, device: str, timeout_s: float, bench_budget_s: float, task: Task
    ):
        """`device` is the run config's (auto, cpu, cuda), resolved against the cluster's resources:
        auto is cuda where the cluster has a GPU. ConfigError when Ray cannot be reached, the cluster
        lacks what was asked, or the evaluators do not start."""
        self.settings, self.task, self.timeout_s = settings, task, timeout_s
        self._owns_ray = False
        self.slots: dict[int, Slot] = {}
        self._connect()
        try:
            self.device = self._device(device)
            n = self._count()
            self.bundle = TaskBundle.of(task)
            self._bundle_ref = ray.put(self.bundle)
            self._actor_class = ray.remote(EvaluatorHost).options(
                num_gpus=1 if self.device == "cuda" else 0,
                num_cpus=1,
                max_restarts=0,  # a dead actor is replaced by a new one, its loss logged
                max_task_retries=0,
            )
            # CPU slots share the cluster's cores; a GPU's evaluator takes its node's CPUs per GPU
            threads = int(ray.cluster_resources().get("CPU", 1)) // n if self.device == "cpu" else None
            self._args = (self.device, timeout_s, bench_budget_s, threads)
            actors = [self._spawn() for _ in range(n)]
            infos = self._started(actors)
            self.slots = {i: Slot(i, a, info) for i, (a, info) in enumerate(zip(actors, infos))}
            self.profile = self._profile([s.info for s in self.slots.values()])
        except BaseException:
            self.close()
            raise
        self.start_events = [
            InfraEvent(
                event="pool_start",
                at=_now(),
                evaluators=[
                    {
                        "evaluator": s.index,
                        "node": s.info["node"],
                        "host": s.info["host"],
                        "gpu": s.info["gpu"],
                    }
                    for s in self.slots.values()
                ],
            )
        ]

    # ------------------------------------------------------------------ set-up

    def _connect(self) -> None:
        if ray.is_initialized():  # a caller's own Ray session (a notebook, the tests): used as it is
            return
        address = self.settings.address
        kwargs: dict[str, Any] = {}
        if not (address or "").startswith("ray://"):  # a Ray Client passes its arguments to the server
            kwargs = {"logging_level": logging.WARNING, "log_to_driver": False}
        if address is None:
            kwargs["include_dashboard"] = False
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
            where = address or "this machine"
            raise ConfigError(
                f"cannot reach a Ray cluster at {where} ({_error_line(e)}); start one with "
                "`ray start --head` or pass --cluster ray://HOST:10001"
            ) from e
        self._owns_ray = True

    def _device(self, requested: str) -> str:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if requested == "auto":
            return "cuda" if gpus else "cpu"
        if requested == "cuda" and not gpus:
            raise ConfigError("device cuda: the Ray cluster has no GPU; add GPU nodes or run with device cpu")
        return requested

    def _count(self) -> int:
        resources = ray.cluster_resources()
        kind = "GPU" if self.device == "cuda" else "CPU"
        have = int(resources.get(kind, 0))
        n = self.settings.evaluators or (have if self.device == "cuda" else min(2, have))
        if n < 1 or n > have:
            raise ConfigError(
                f"cluster.evaluators {n}: the Ray cluster has {have} {kind}s "
                f"(one evaluator takes one {kind}); ask for at most {have}"
            )
        return n

    def _spawn(self) -> Any:
        actor: Any = self._actor_class.remote(*self._args)
        actor.prepare.remote(self._bundle_ref)  # an actor runs one caller's calls in order
        return actor

    def _started(self, actors: list[Any]) -> list[dict[str, Any]]:
        refs = [a.describe.remote() for a in actors]
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=self.settings.start_timeout_s)
        if pending:
            for a in actors:
                ray.kill(a)
            raise ConfigError(
                f"{len(pending)} of {len(refs)} evaluators were not placed and started within "
                f"{self.settings.start_timeout_s:g} s (the cluster's free resources: "
                f"{ray.available_resources()}); free them or lower cluster.evaluators"
            )
        try:
            infos = ray.get(refs)
        except (RayTaskError, *LOST) as e:
            raise ConfigError(f"an evaluator failed to start: {_error_line(e)}") from e
        for info in infos:
            if info["ksearch_version"] != ksearch.__version__:
                raise ConfigError(
                    f"the evaluator on {info['host']} runs ksearch {info['ksearch_version']}, this driver "
                    f"{ksearch.__version__}: install the same ksearch on every node"
                )
        return infos

    def _profile(self, infos: list[dict[str, Any]]) -> str | None:
        """The target profile of the evaluators' GPUs (one for all), None on CPU slots."""
        if self.device != "cuda":
            return None
        profiles = {i["profile"] for i in infos}
        if None in profiles:
            host = next(i["host"] for i in infos if i["profile"] is None)
            raise ConfigError(
                f"the GPU of the evaluator on {host} matches no target profile, so its timings cannot be "
                "scored; add a profile under configs/targets/ or run with device: cpu"
            )
        if len(profiles) > 1:
            raise ConfigError(
                f"the cluster's GPUs are of several targets ({', '.join(sorted(map(str, profiles)))}); one "
                "run scores one primary target: give each GPU model its own cluster"
            )
        return profiles.pop()

    # ------------------------------------------------------------------ what the pipeline uses

    @property
    def parallel(self) -> int:
        """Candidates evaluated at once: the number of evaluators."""
        return len(self.slots)

    @property
    def environment(self) -> dict[str, Any]:
        """An evaluator's environment (GPU, driver, toolchain), as packets record it."""
        return dict(next(iter(self.slots.values())).info["environment"])

    def prepare(self, spec: EvalSpec) -> None:
        """Nothing: each actor times its baselines at its first candidate, in a process of its own that
        runs no compile thread."""

    def evaluate_many(self, jobs: list[EvalJob], spec: EvalSpec) -> list[Evaluated]:
        """Every job's packet, in the jobs' order; the evaluators take them as they free up."""
        results: list[EvidencePacket | None] = [None] * len(jobs)
        events: list[list[InfraEvent]] = [[] for _ in jobs]
        queue = deque((i, 0) for i in range(len(jobs)))  # (job, try)
        idle = deque(sorted(self.slots))
        running: dict[Any, tuple[int, int, int]] = {}  # ObjectRef -> (slot, job, try)
        while queue or running:
            while queue and idle:
                s = idle.popleft()
                i, attempt = queue.popleft()
                ref = self.slots[s].actor.evaluate.remote(self._request(jobs[i], attempt, spec))
                running[ref] = (s, i, attempt)
                self._submitted(self.slots[s], jobs[i], attempt)
            if not running:
                raise EvaluatorsLost(
                    f"no evaluator is left ({len(queue)} candidates of the batch unevaluated; see the "
                    "infra_event rows): check the Ray cluster, then resume the run",
                    [e for met in events for e in met],
                )
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                s, i, attempt = running.pop(ref)
                try:
                    text = ray.get(ref)
                except RayTaskError as e:  # the evaluator raised: as the local path, the run stops on it
                    raise e.as_instanceof_cause() from None
                except LOST as e:
                    slot = self.slots[s]
                    events[i].append(self._event("evaluator_lost", slot, jobs[i], attempt, _error_line(e)))
                    if attempt < self.settings.retries:
                        queue.appendleft((i, attempt + 1))
                    else:
                        results[i] = self._lost_packet(jobs[i], spec, attempt + 1, _error_line(e))
                        events[i].append(self._event("retries_exhausted", slot, jobs[i], attempt))
                    events[i].append(self._replace(s))
                    if s in self.slots:
                        idle.append(s)
                    continue
                results[i] = EvidencePacket.model_validate_json(text)
                idle.append(s)
        return [Evaluated(p, e) for p, e in zip(results, events) if p is not None]

    def _submitted(self, slot: Slot, job: EvalJob, attempt: int) -> None:
        """Called once a job is on its way to an evaluator: nothing here; a seam for tests that
        kill the evaluator under it."""

    def _request(self, job: EvalJob, attempt: int, spec: EvalSpec) -> EvalRequest:
        return EvalRequest(
            job.candidate_id, attempt, job.path.name, job.source, str(job.path.resolve()), spec
        )

    def _event(
        self, event: str, slot: Slot, job: EvalJob | None = None, attempt: int | None = None, error: str = ""
    ) -> InfraEvent:
        return InfraEvent.model_validate(
            {
                "event": event,
                "at": _now(),
                "candidate": job.candidate_id if job else None,
                "attempt": attempt,
                "evaluator": slot.index,
                "node": slot.info.get("node"),
                "host": slot.info.get("host"),
                "gpu": slot.info.get("gpu"),
                "error": error,
            }
        )

    def _replace(self, s: int) -> InfraEvent:
        """A new actor in slot `s` in place of the dead one; the slot is dropped when none starts."""
        old = self.slots[s]
        try:
            ray.kill(old.actor, no_restart=True)
        except (ValueError, *LOST):  # already gone
            pass
        actor = self._spawn()
        problem = ""
        try:
            info = ray.get(actor.describe.remote(), timeout=self.settings.start_timeout_s)
        except GetTimeoutError:
            problem = f"no replacement was placed and started within {self.settings.start_timeout_s:g} s"
        except (RayTaskError, *LOST) as e:
            problem = f"its replacement failed to start: {_error_line(e)}"
        else:
            if self.device == "cuda" and info["profile"] != self.profile:
                problem = f"its replacement's GPU is a {info['profile']}, not a {self.profile}"
        if problem:
            ray.kill(actor)
            del self.slots[s]
            return self._event("evaluator_dropped", old, error=problem)
        self.slots[s] = Slot(s, actor, info)
        return self._event("evaluator_started", self.slots[s])

    def _lost_packet(self, job: EvalJob, spec: EvalSpec, tries: int, error: str) -> EvidencePacket:
        """The packet of a candidate no evaluator lived to judge: skipped, the infrastructure's fault."""
        return unevaluated_packet(
            self.task,
            job.path,
            job.source.decode(errors="replace"),
            target=spec.target,
            dtype=spec.dtype,
            seeds=list(spec.seeds),
            workloads=spec.workloads or [w.name for w in self.task.workloads(cpu_only=self.device == "cpu")],
            timeout_s=self.timeout_s,
            failure=FailureClass.SKIPPED_EVALUATOR_LOST,
            message=f"not evaluated: its evaluator died under it on each of {tries} tries (last: {error}); "
            "an infrastructure failure, not the candidate's",
        )

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Stop every evaluator (its worker processes first), and Ray when this pool started it."""
        actors = [s.actor for s in self.slots.values()]
        self.slots = {}
        if actors:
            try:
                ray.wait([a.close.remote() for a in actors], num_returns=len(actors), timeout=CLOSE_S)
            except LOST:
                pass
            for a in actors:
                try:
                    ray.kill(a)
                except (ValueError, *LOST):
                    pass
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
