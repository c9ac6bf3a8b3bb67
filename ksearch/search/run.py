"""`ksearch run`: open (or resume) a run directory, search, and leave a complete, resumable log.

A run directory holds history.jsonl (the truth), blobs/ (every source evaluated, content-addressed;
the `step` rows map candidate ids to them), and at the end best_kernel.py with best_packet.json. `--resume RUN_DIR`
replays the log (world model, memory, counters, bests) and continues the same sequence.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass
from pathlib import Path

import ksearch
from ksearch import settings
from ksearch.errors import ConfigError
from ksearch.evidence import EvidencePacket
from ksearch.harness.evaluate import Evaluator, resolve_device
from ksearch.log import History, history_path, make_run_dir, new_run_id, read_blob
from ksearch.log.history import read_rows
from ksearch.log.index import connect_readonly, read_evaluation_packets
from ksearch.log.lock import writer_lock
from ksearch.log.rows import (
    BestRecord,
    FinalAudit,
    PacketId,
    ProposerCallRecord,
    RunResume,
    RunStart,
    RunStop,
    Step,
)
from ksearch.propose.llm import make_proposer
from ksearch.propose.settings import apply_spec
from ksearch.search.config import RunConfig, apply_cluster_spec, load_run_config, validate_run_config
from ksearch.search.loop import Progress, Search
from ksearch.search.pipeline import EvaluatorPool, LocalPool, Pipeline, PoolOpener
from ksearch.search.reuse import Reuse, settings_of
from ksearch.target import detect_local_device, environment_snapshot, load_target
from ksearch.task import load_task
from ksearch.worldmodel import WorldModel, record


@dataclass
class RunResult:
    run_dir: Path
    stop_reason: str
    progress: Progress
    best_kernel: Path | None
    best_packet: Path | None
    device: str
    resumed: bool
    wm: WorldModel
    evaluated: int  # candidates evaluated by this invocation (a resume's earlier ones not counted)
    interrupted: bool  # stopped by Ctrl-C


def default_log_root() -> Path:
    return settings.log_root()


def run_config_of(run_dir: Path) -> RunConfig:
    """The config a run last ran with: its run_start row's, or its latest resume's."""
    config = None
    for row in read_rows(run_dir, RunStart.KIND, RunResume.KIND):
        if isinstance(row.payload, RunStart | RunResume):
            config = row.payload.config
    if config is None:
        raise ConfigError(f"{run_dir} has no run_start row: it is not a run ksearch can resume")
    return RunConfig.model_validate(config)


def _spent(run_dir: Path) -> tuple[int, float, float]:
    """Evaluations, wall seconds and LLM dollars a run has spent so far, from its rows."""
    evaluations, seconds, usd = 0, 0.0, 0.0
    for row in read_rows(run_dir, Step.KIND, RunStop.KIND, ProposerCallRecord.KIND):
        if isinstance(row.payload, RunStop):
            seconds += row.payload.elapsed_s
        elif isinstance(row.payload, ProposerCallRecord):
            usd += row.payload.usd or 0.0
        else:
            evaluations += 1
    return evaluations, seconds, usd


def _resume_budget(run_dir: Path, cfg: RunConfig, overrides: dict) -> dict:
    """On resume, --budget-evals N, --budget-seconds S and --budget-usd D mean N more evaluations, S
    more seconds and D more dollars: the overrides become totals. A resume with no evaluations or
    seconds left is refused before anything is written."""
    done, seconds, usd = _spent(run_dir)
    more = dict(overrides)
    if more.get("budget.llm_usd"):  # 0 stays "no limit"
        more["budget.llm_usd"] = usd + more["budget.llm_usd"]
    if more.get("budget.evaluations") is not None:
        more["budget.evaluations"] = done + more["budget.evaluations"]
    if more.get("budget.wall_s") is not None:
        more["budget.wall_s"] = seconds + more["budget.wall_s"]
    evaluations = more.get("budget.evaluations") or cfg.budget.evaluations
    wall_s = more.get("budget.wall_s") or cfg.budget.wall_s
    if done >= evaluations:
        raise ConfigError(
            f"{run_dir} has spent its budget of {evaluations} evaluations; "
            f"ksearch run --resume {run_dir} --budget-evals N evaluates N more"
        )
    if seconds >= wall_s:
        raise ConfigError(
            f"{run_dir} has spent its wall-time budget ({seconds:.0f} s of {wall_s:.0f} s); "
            f"ksearch run --resume {run_dir} --budget-seconds S runs S seconds more"
        )
    return more


def start_run(
    config_path: Path | None = None,
    *,
    log_dir: Path | None = None,
    overrides: dict | None = None,
    resume: Path | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
    open_pool: PoolOpener | None = None,
) -> RunResult:
    """Run (or resume) a search. `overrides` are dotted config fields from the command line
    (task, device, seed, budget.evaluations, budget.wall_s, budget.llm_usd), plus `proposer` (a
    spec, see ksearch.propose.settings), `cluster` (local, ray or ray://ADDRESS: backend and address
    of the config's cluster block) and `replay_from`. A replay with no CONFIG takes the
    config of the run it replays. On resume the budget overrides count from where the run stopped.
    `on_start(run_dir)` is called once the run directory is held, before the first evaluation.
    `open_pool` opens the evaluator pool of a run whose cluster backend is not local: the entry
    point's to give (`ksearch run` passes ksearch.cluster.open_pool, Ray's)."""
    overrides = overrides or {}
    with ExitStack() as stack:
        if resume is not None:
            # before anything else, so that a second writer of the run is refused at once
            stack.enter_context(writer_lock(history_path(Path(resume)).parent))
        return _run(stack, config_path, log_dir, overrides, resume, on_progress, on_start, open_pool)


def _run(
    stack: ExitStack,
    config_path: Path | None,
    log_dir: Path | None,
    overrides: dict,
    resume: Path | None,
    on_progress: Callable[[Progress], None] | None,
    on_start: Callable[[Path], None] | None,
    open_pool: PoolOpener | None,
) -> RunResult:
    replay_from = overrides.get("replay_from")
    if resume is not None:
        cfg = run_config_of(Path(resume))
        if config_path is not None:
            raise ConfigError(
                "--resume continues a run with its own config (the one it last ran with); "
                "drop the CONFIG argument"
            )
        fixed = [f"--{k.split('.')[-1]}" for k in ("dtype", "eval.workloads") if overrides.get(k)]
        if fixed:
            raise ConfigError(f"--resume keeps the run's own settings: drop {' and '.join(fixed)}")
        overrides = _resume_budget(Path(resume), cfg, overrides)
    elif config_path is None and replay_from is not None:
        cfg = run_config_of(Path(replay_from))
    else:
        cfg = load_run_config(config_path)
    cfg = _override(cfg, overrides)
    task = load_task(cfg.task)
    dtype = cfg.dtype or task.default_dtype
    if overrides.get("task") and not overrides.get("dtype") and dtype not in task.dtypes:
        # the config's dtype was its own task's: --task brings the new task's default (kept in the
        # logged config, so a resume finds it)
        dtype = task.default_dtype
        cfg = cfg.model_copy(update={"dtype": dtype})
    if dtype not in task.dtypes:
        raise ConfigError(
            f"dtype {dtype!r} is not a variant of task {task.name}; choose one of {', '.join(task.dtypes)}"
        )
    for name in cfg.eval.workloads or []:
        task.workload(name)  # an unknown name is refused here, before a run directory exists
    pool: EvaluatorPool | None = None
    pool_started = time.monotonic()
    if cfg.cluster.backend != "local":
        if open_pool is None:
            raise ConfigError(
                f"cluster backend {cfg.cluster.backend}: this caller cannot open an evaluator pool; "
                "use `ksearch run`, or pass open_pool=ksearch.cluster.open_pool to start_run"
            )
        # before the run directory exists: a cluster that cannot serve leaves nothing behind
        pool = open_pool(
            cfg.cluster,
            device=cfg.device,
            timeout_s=cfg.eval.timeout_s,
            bench_budget_s=cfg.eval.bench_budget_s,
            task=task,
        )
        stack.callback(pool.close)
        device = pool.device
    else:
        device = resolve_device(cfg.device)
    profiles = [load_target(name) for name in cfg.targets]
    primary = profiles[0].name
    if device == "cuda":
        if pool is not None:
            gpu_profile = pool.profile  # every evaluator's GPU is of this one target (checked)
        else:
            local = detect_local_device()
            if local is None or not local.profile:
                raise ConfigError(
                    "this GPU matches no target profile, so its timings cannot be scored; "
                    "add a profile under configs/targets/ or run with device: cpu"
                )
            gpu_profile = local.profile
        assert gpu_profile is not None
        primary = gpu_profile
        if primary not in {p.name for p in profiles}:
            profiles.append(load_target(primary))
        profiles.sort(key=lambda p: p.name != primary)  # the primary first: Pipeline scores profiles[0]

    root, run_id = Path(log_dir or default_log_root()), new_run_id(task.name)
    run_dir = Path(resume) if resume is not None else root / run_id
    # before the run directory exists, so that a missing API key or a run that cannot be reused
    # leaves nothing behind
    reuse = None
    if cfg.eval.reuse:
        reuse = Reuse(
            cfg.eval.reuse, settings_of(task.name, dtype, device, cfg.model_dump(mode="json")), primary
        )
    # the proposer plans for (and prompts with) the run's own shapes; the pipeline narrows itself
    searched = task.only(cfg.eval.workloads) if cfg.eval.workloads else task
    proposer = make_proposer(
        cfg.proposer, searched, dtype, [p.name for p in profiles], run_dir, cfg.budget.llm_usd
    )
    if resume is None:
        run_dir = make_run_dir(root, run_id)
        stack.enter_context(writer_lock(run_dir))
    history = History(run_dir)
    # the wall-time budget counts from here, evaluator start-up included (a pool's: from its start)
    started = time.monotonic() if pool is None else pool_started
    if on_start is not None:
        on_start(run_dir)
    snapshot = environment_snapshot().model_dump(mode="json")
    if resume is None:
        history.append(
            RunStart(
                config=cfg.model_dump(mode="json"),
                task=task.name,
                dtype=dtype,
                targets=[p.name for p in profiles],
                primary=primary,
                device=device,
                ksearch_version=ksearch.__version__,
                environment=snapshot,
            )
        )
        wm = WorldModel.new(
            f"{task.name} {dtype} on {primary}",
            description=f"targets: {', '.join(p.name for p in profiles)}",
            attrs={"task": task.name, "dtype": dtype, "primary": primary},
        )
        record(history, [], "new run", root=wm.root)  # the proposer's plan comes first in Search.run
    else:
        wm = WorldModel.from_log(run_dir)
        history.append(RunResume(config=cfg.model_dump(mode="json"), device=device, environment=snapshot))

    evaluator: EvaluatorPool
    if pool is not None:
        history.append_many(pool.start_events)  # where each evaluator runs
        evaluator = pool
    else:
        own = Evaluator(device, timeout_s=cfg.eval.timeout_s, bench_budget_s=cfg.eval.bench_budget_s)
        evaluator = LocalPool(stack.enter_context(own), task)
    pipeline = Pipeline(
        run_dir,
        task,
        dtype,
        profiles,
        evaluator,
        cfg.eval,
        reuse=reuse,
    )
    stack.callback(pipeline.close)
    # Everything loaded so far (torch, triton, the task, the log) lives as long as the run: a full
    # collection would walk it all again every time, 0.5-1 s a pass, between candidates.
    gc.freeze()
    stack.callback(gc.unfreeze)  # frozen objects are never freed: extension modules report them leaked
    search = Search(
        cfg, history, searched, dtype, pipeline, proposer, wm, on_progress=on_progress, started=started
    )
    if resume is not None:
        search.restore(run_dir)
    evaluated_before = search.progress.evaluations
    interrupted = False
    try:
        reason = search.run()
    except KeyboardInterrupt:
        reason, interrupted = f"interrupted (Ctrl-C); resume: ksearch run --resume {run_dir}", True
    p = search.progress
    p.elapsed_s = search.elapsed_before + search.elapsed_now()
    best_kernel = best_packet = None
    if p.best is not None:
        best_kernel = run_dir / "best_kernel.py"
        best_kernel.write_bytes(read_blob(run_dir, p.best.blob))
        best_packet = run_dir / "best_packet.json"
        best_id = PacketId.parse(p.best.packet_id)
        packets = _packets(run_dir, best_id.evaluation)
        primary_packet = packets[best_id]
        best_packet.write_text(primary_packet.model_dump_json(indent=2))
        # The best kernel on the targets it was not compiled for during the search (eval.targets: best)
        logged = frozenset(t for pid in packets if (t := pid.target) is not None)
        missing = pipeline.other_targets(primary_packet, p.best.blob, logged)
        if missing:  # one append: the index counts these packets as final audits, not search evaluations
            audit = FinalAudit(
                candidate=p.best.candidate, targets={m.candidate.target: m.status.value for m in missing}
            )
            history.append_many([*missing, audit])
    history.append(
        RunStop(
            reason=reason,
            evaluations=p.evaluations,
            passed=p.passed,
            failures=dict(p.failures),
            elapsed_s=round(search.elapsed_now(), 3),
            best=BestRecord.model_validate(asdict(p.best)) if p.best else None,
        )
    )
    return RunResult(
        run_dir,
        reason,
        p,
        best_kernel,
        best_packet,
        device,
        resume is not None,
        wm,
        p.evaluations - evaluated_before,
        interrupted,
    )


def _override(cfg: RunConfig, overrides: dict) -> RunConfig:
    data = cfg.model_dump()
    data["proposer"] = apply_spec(data["proposer"], overrides.get("proposer"), overrides.get("replay_from"))
    data["cluster"] = apply_cluster_spec(data["cluster"], overrides.get("cluster"))
    for dotted, value in overrides.items():
        if value is None or dotted in ("proposer", "replay_from", "cluster"):
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return validate_run_config(data, "command-line override")


def _packets(run_dir: Path, evaluation: str) -> dict[PacketId, EvidencePacket]:
    """Every logged packet of one evaluation (one per target), by packet id, through the index (not a
    pass over the whole history)."""
    with closing(connect_readonly(run_dir)) as conn:
        return {PacketId.parse(p.packet_id): p for p in read_evaluation_packets(conn, run_dir, evaluation)}
