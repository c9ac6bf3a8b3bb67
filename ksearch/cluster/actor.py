"""The evaluator actor: one `Evaluator` per GPU (or CPU slot), long-lived, one evaluation at a time.

Ray gives the actor its GPU (`num_gpus=1` sets CUDA_VISIBLE_DEVICES, which the evaluator's worker
and judge processes inherit), so the Evaluator here is the local path's own, built with the same
arguments: warm processes, arenas, baselines timed on this GPU. Candidates arrive as bytes and are
written into the actor's scratch directory; the packet then names the driver's copy (the run's blob)
instead, so it reads as the local path's would, and carries the node and GPU that produced it.

nvidia-smi numbers GPUs regardless of CUDA_VISIBLE_DEVICES, so the evaluator's environment snapshot
(its first GPU) may describe another GPU of the node; the actor finds its own by UUID and stamps its
name, index, UUID, driver and clocks on every packet.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import socket
import tempfile
from itertools import count
from pathlib import Path
from typing import Any

import ksearch
from ksearch.cluster.jobs import EvalRequest, TaskBundle
from ksearch.errors import KsearchError
from ksearch.harness.evaluate import Evaluator
from ksearch.task import Task, load_task


def _json_text(text: str) -> str:
    """`text` as it appears inside a JSON string."""
    return json.dumps(text)[1:-1]


def _own_gpu(device: str) -> dict[str, Any]:
    """This process's GPU as packets record it ({} on a CPU slot, or where nothing can be found)."""
    if device != "cuda":
        return {}
    import ray
    import torch

    from ksearch.target.snapshot import gpu_info

    gpus, _ = gpu_info(torch)
    uuid = getattr(torch.cuda.get_device_properties(0), "uuid", None)

    def norm(u: object) -> str | None:
        return str(u).lower().removeprefix("gpu-") if u else None

    match = next((g for g in gpus if uuid is not None and norm(g.uuid) == norm(uuid)), None)
    ids = [str(i) for i in ray.get_gpu_ids()]
    if match is None and ids and ids[0].isdigit():
        match = next((g for g in gpus if g.index == int(ids[0])), None)
    if match is None:
        return {"gpu_name": torch.cuda.get_device_name(0), "gpu_uuid": norm(uuid) and f"GPU-{norm(uuid)}"}
    clocks = {"sm": match.sm_clock_mhz, "sm_max": match.sm_clock_max_mhz, "mem": match.mem_clock_mhz}
    return {
        "gpu_name": match.name,
        "gpu_index": match.index,
        "gpu_uuid": match.uuid,
        "driver": match.driver_version,
        "clocks_mhz": {k: v for k, v in clocks.items() if v is not None},
    }


class EvaluatorHost:
    """The body of an evaluator actor (`ray.remote(EvaluatorHost)` in the pool)."""

    def __init__(self, device: str, timeout_s: float, bench_budget_s: float, threads: int | None = None):
        """`threads`: CPU threads of this evaluator and its processes (None: the node's CPUs per GPU).
        Ray sets OMP_NUM_THREADS=1 in an actor of one CPU; the local evaluator has the machine's."""
        import ray
        import torch

        node_id = ray.get_runtime_context().get_node_id()
        if threads is None:
            node: dict[str, float] = next(
                (n["Resources"] for n in ray.nodes() if n.get("NodeID") == node_id), {}
            )
            threads = int(node.get("CPU", os.cpu_count() or 1) // max(1, node.get("GPU", 1)))
        threads = max(1, threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the worker and judge processes inherit it
        torch.set_num_threads(threads)
        self.device = device
        # exactly as the local path (ksearch.search.run) builds its evaluator
        self.evaluator = Evaluator(device, timeout_s=timeout_s, bench_budget_s=bench_budget_s)
        self.scratch = Path(tempfile.mkdtemp(prefix="ksearch-evaluator-")).resolve()
        self.task: Task | None = None
        self.renames: list[tuple[str, str]] = []  # (actor's path, driver's) in packets, as JSON text
        self.jobs = count()
        gpu = _own_gpu(device)
        self.stamp = {"node": node_id, **gpu}
        # torch, triton and the evaluator stay for the actor's life: as in the driver, a full collection
        # would walk them between candidates
        gc.freeze()

    def describe(self) -> dict[str, Any]:
        """Where this evaluator runs, what it has, and which target profile its GPU is."""
        profile = None
        if self.device == "cuda":
            from ksearch.target import detect_local_device

            local = detect_local_device()
            profile = local.profile if local else None
        environment = {**self.evaluator.environment, **self.stamp}
        return {
            "node": self.stamp["node"],
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "ksearch_version": ksearch.__version__,
            "device": self.device,
            "gpu": _gpu_label(self.stamp),
            "profile": profile,
            "environment": environment,
        }

    def prepare(self, bundle: TaskBundle) -> None:
        """Load the run's task: where the driver names it, when it holds the same files here;
        else from the bundle's copy, its paths renamed to the driver's in packets."""
        here = None
        try:
            here = load_task(bundle.ref)
        except KsearchError:
            here = None
        if here is not None and bundle.same_at(here.root.resolve()):
            self.task, self.renames = here, []
            return
        root = bundle.write(self.scratch / "task").resolve()
        self.task = load_task(root)
        self.renames = [(_json_text(str(root)), _json_text(bundle.root))]

    def evaluate(self, request: EvalRequest) -> str:
        """The request's packet as JSON: the evaluator's, naming the driver's paths, stamped with this
        node and GPU. Exceptions are the evaluator's own (the driver raises them as the local path would)."""
        if self.task is None:
            raise RuntimeError("evaluate before prepare: the pool sends the task first")
        job_dir = self.scratch / f"job{next(self.jobs)}"
        job_dir.mkdir()
        path = job_dir / request.filename
        path.write_bytes(request.source)
        try:
            packet = request.spec.evaluate(self.evaluator, path, self.task)
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)
        text = packet.model_dump_json()
        for mine, theirs in [(_json_text(str(path)), _json_text(request.display_path)), *self.renames]:
            text = text.replace(mine, theirs)
        data = json.loads(text)
        data["environment"].update(self.stamp)
        return json.dumps(data)

    def close(self) -> None:
        self.evaluator.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _gpu_label(stamp: dict[str, Any]) -> str | None:
    if not stamp.get("gpu_name"):
        return None
    index = stamp.get("gpu_index")
    return stamp["gpu_name"] + (f" #{index}" if index is not None else "")
