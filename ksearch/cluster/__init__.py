"""Evaluation on a Ray cluster: one long-lived evaluator actor per GPU (CPU slots without GPUs).

The search loop stays in one driver process, the log's only writer: it proposes, compiles (its own
process pool) and logs. Each actor owns an `Evaluator` (ksearch.harness.evaluate), built exactly as
the local path builds it, with its warm worker, judge, arenas and baselines; it receives a candidate
as source bytes (the driver's files need not exist on the actor's node), evaluates it and returns
the packet, stamped with the node and GPU that produced it. Ray places the actors (`num_gpus=1`),
`ray.wait` collects what finished; an actor or node that dies is replaced by a new actor and the
candidate is evaluated again (bounded retries), each loss an `infra_event` row. Ray is an optional
extra: nothing here imports it until a pool is opened.

An entry point, like the CLI: the search knows a pool only by its contract
(ksearch.search.pipeline.EvaluatorPool) and `ksearch run` hands it `open_pool`.

    jobs      what crosses between driver and actors beyond that contract: the request, the task
    actor     the actor: an Evaluator, a scratch directory, the packet's node and GPU
    pool      the driver's side: connect, place the actors, dispatch a batch, replace the dead
    overhead  the per-candidate cost of the Ray path against the local one (python -m ...)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksearch.errors import ConfigError

if TYPE_CHECKING:
    from ksearch.cluster.pool import RayPool
    from ksearch.search.config import ClusterSettings

INSTALL_RAY = "pip install -e '.[ray]'"


def ray_available() -> bool:
    """Whether Ray imports here (installed and working: a broken install counts as none)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def open_pool(
    settings: ClusterSettings, *, device: str, timeout_s: float, bench_budget_s: float, task
) -> RayPool:
    """A started pool of evaluator actors on the Ray cluster `settings` names (see RayPool); a
    ConfigError, before anything is placed, when Ray is not installed or the cluster cannot serve."""
    if not ray_available():
        raise ConfigError(f"--cluster ray needs Ray, which is not installed: {INSTALL_RAY}")
    from ksearch.cluster.pool import RayPool

    return RayPool(settings, device=device, timeout_s=timeout_s, bench_budget_s=bench_budget_s, task=task)
