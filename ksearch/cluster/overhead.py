"""What evaluating through a Ray actor costs per candidate, against the local path, on this machine.

    python -m ksearch.cluster.overhead [--candidates 12] [--order blocks|alternate] [--gap S] [--runs]

The same candidates (strategy templates of the task, rendered with their first settings) are
evaluated one at a time by a local `Evaluator` and by a pool of one Ray evaluator actor (each
warmed on one candidate first), in blocks A B A B so that drift shows, or alternating candidate by
candidate; `--gap 4` rests before each evaluation so that the evaluator's spare worker and judge
processes have started (back to back, on few cores, their start-up is most of the spread). The Ray figure is the
driver's wall time per candidate: request, the actor's evaluation, the packet back and validated;
"outside the evaluator" is that wall time less the packet's own `durations_s.total`, i.e. what the
path around the evaluator costs (Ray's round trip, the source written, the packet rewritten).
With `--runs`, also two searches of the same config, local and `--cluster ray` with one evaluator:
seconds per candidate between the first and the last step row (start-up and the cold first
candidate left out).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import typer

from ksearch.harness.evaluate import Evaluator
from ksearch.log import put_blob
from ksearch.propose.adapt import TaskTemplates
from ksearch.search.config import ClusterSettings
from ksearch.search.pipeline import EvalJob, EvalSpec
from ksearch.target import load_target
from ksearch.task import load_task

WORKLOADS = ["llama3_8b_decode_m1", "gpt_oss_m7_n2880"]  # the tests' small rmsnorm run


def candidates(task_name: str, n: int, target: str, out: Path) -> list[Path]:
    """`n` candidate sources of the task's templates (first settings of each, in turn), as blobs."""
    task = load_task(task_name)
    templates = TaskTemplates(task, load_target(target).triton.backend)
    settings = [[(t, k) for k in t.untried(set())] for t in templates.templates]
    picked = []
    for i in range(max(len(s) for s in settings)):
        picked += [s[i] for s in settings if i < len(s)]
    return [out / put_blob(out, templates.render(t, k).encode(), ".py") for t, k in picked[:n]]


def _stats(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.3f} s, mean {statistics.fmean(xs):.3f} s (n={len(xs)})"


def micro(
    n: int, device: str, task_name: str, dtype: str, target: str, order: str, gap_s: float
) -> dict[str, list[float]]:
    """Wall seconds per candidate (`local`, `ray`), the packets' own `total` (`... inside`), and the
    wall time less it (`... outside`). `order`: blocks (local, ray, local, ray, each over every
    candidate) or alternate (candidate by candidate); `gap_s` seconds of rest before each one."""
    import ray

    from ksearch.cluster.pool import RayPool

    task = load_task(task_name)
    spec = EvalSpec(target, dtype, (0,), WORKLOADS)
    times: dict[str, list[float]] = {
        f"{m}{k}": [] for m in ("local", "ray") for k in ("", " inside", " outside")
    }
    with tempfile.TemporaryDirectory(prefix="ksearch-overhead-") as d:
        paths = candidates(task_name, n + 1, target, Path(d))
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        try:
            with (
                Evaluator(device, timeout_s=300, bench_budget_s=1.0) as ev,
                RayPool(
                    ClusterSettings(backend="ray", evaluators=1),
                    device=device,
                    timeout_s=300,
                    bench_budget_s=1.0,
                    task=task,
                ) as pool,
            ):

                def local(p: Path) -> float:
                    packet = ev.evaluate(p, task, target=target, dtype=dtype, seeds=(0,), workloads=WORKLOADS)
                    return packet.durations_s["total"]

                def remote(p: Path) -> float:
                    (got,) = pool.evaluate_many([EvalJob(p.stem[:8], p, p.read_bytes())], spec)
                    assert got.packet.environment.node is not None
                    return got.packet.durations_s["total"]

                def timed(mode: str, p: Path) -> None:
                    time.sleep(gap_s)
                    t0 = time.perf_counter()
                    inside = (local if mode == "local" else remote)(p)
                    wall = time.perf_counter() - t0
                    times[mode].append(wall)
                    times[f"{mode} inside"].append(inside)
                    times[f"{mode} outside"].append(wall - inside)

                local(paths[0])  # warm: the first evaluation starts the evaluator's processes
                remote(paths[0])
                if order == "alternate":
                    for p in paths[1:]:
                        for mode in ("local", "ray"):
                            timed(mode, p)
                else:
                    for mode in ("local", "ray", "local", "ray"):
                        for p in paths[1:]:
                            timed(mode, p)
                        print(f"  {mode:5s} block: {_stats(times[mode][-n:])}", flush=True)
        finally:
            ray.shutdown()
    return times


def runs(n: int, device: str) -> dict[str, float]:
    """Seconds per candidate of a search on `device`, local and through one Ray evaluator."""
    import yaml

    from ksearch.cluster import open_pool
    from ksearch.log import iter_rows
    from ksearch.search.run import start_run

    config = {
        "task": "rmsnorm",
        "dtype": "float16",
        "targets": ["h100"],
        "device": device,
        "seed": 3,
        "budget": {"evaluations": n, "wall_s": 3600},
        "search": {"islands": 2, "migrate_every": 2, "stagnation": 1, "max_per_visit": 2, "batch": 2},
        "eval": {"seeds": [0], "workloads": WORKLOADS, "targets": "best"},
    }
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ksearch-overhead-runs-") as d:
        for name, cluster in (("local", "local"), ("ray", {"backend": "ray", "evaluators": 1})):
            path = Path(d) / f"{name}.yaml"
            path.write_text(yaml.safe_dump({**config, "cluster": cluster}))
            result = start_run(path, log_dir=Path(d) / name, open_pool=open_pool)
            rows = [line.row or {} for line, _ in iter_rows(result.run_dir)]
            stamps = [datetime.fromisoformat(r["ts"]) for r in rows if r.get("kind") == "step"]
            out[name] = (stamps[-1] - stamps[0]).total_seconds() / (len(stamps) - 1)
            print(f"  {name:5s} run: {out[name]:.3f} s per candidate ({len(stamps)} candidates)", flush=True)
    return out


def main(
    candidates_n: int = typer.Option(8, "--candidates", help="candidates timed per block"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    task: str = typer.Option("rmsnorm"),
    dtype: str = typer.Option("float16"),
    target: str = typer.Option("h100", help="the target the packets name"),
    order: str = typer.Option("blocks", help="blocks (local, ray, local, ray) or alternate"),
    gap: float = typer.Option(0.0, help="seconds of rest before each evaluation (4: spare processes ready)"),
    with_runs: bool = typer.Option(False, "--runs", help="also two searches, local and through Ray"),
    run_evaluations: int = typer.Option(12, help="candidates per search with --runs"),
) -> None:
    print(f"per-candidate evaluation, {candidates_n} candidates, device {device}, {order}, gap {gap:g} s:")
    times = micro(candidates_n, device, task, dtype, target, order, gap)
    for what in ("", " inside"):
        for how in (statistics.median, statistics.fmean):
            local, remote = how(times[f"local{what}"]), how(times[f"ray{what}"])
            print(
                f"{'wall' if not what else 'packet total'}, {how.__name__}: local {local:.3f} s, ray "
                f"{remote:.3f} s per candidate: {remote - local:+.3f} s, {100 * (remote - local) / local:+.1f}%"
            )
    outside = 1000 * (statistics.fmean(times["ray outside"]) - statistics.fmean(times["local outside"]))
    print(f"what Ray adds outside the evaluator (wall less the packet's durations_s.total): {outside:.1f} ms")
    if with_runs:
        per = runs(run_evaluations, device)
        d = per["ray"] - per["local"]
        print(f"search: local {per['local']:.3f} s, ray {per['ray']:.3f} s per candidate: {d:+.3f} s")


if __name__ == "__main__":
    typer.run(main)
