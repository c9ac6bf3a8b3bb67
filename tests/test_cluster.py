"""`ksearch run --cluster ray` on the CPU, with a local Ray instance of two CPU slots: the same
verdicts and tree as the local path on the same seed; an evaluator killed under a candidate costs no
attempt and is logged as an infrastructure event (a candidate whose evaluators keep dying is
`skipped:evaluator_lost`, never `worker_crash`); the log verifies; a killed driver resumes."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from clitools import assert_clean_error, kill_run_after_steps, ksearch
from runconfigs import write_run_config

from ksearch.cluster import open_pool, ray_available
from ksearch.errors import ConfigError
from ksearch.log import iter_rows, verify_log
from ksearch.search.config import RunConfig, load_run_config
from ksearch.search.run import run_config_of, start_run
from ksearch.worldmodel import WorldModel

pytestmark = pytest.mark.skipif(not ray_available(), reason="needs Ray: pip install -e '.[ray]'")

RAY = {"backend": "ray", "evaluators": 2}


def payloads(run_dir: Path, kind: str) -> list[dict]:
    return [line.row["payload"] for line, _ in iter_rows(run_dir) if line.row["kind"] == kind]


def packets_of(run_dir: Path) -> dict[str, dict]:
    return {p["packet_id"]: p for p in payloads(run_dir, "attempt")}


def verdicts(run_dir: Path) -> list[tuple]:
    return [
        (s["candidate"], s["template"], s["knobs"], s["passed"], s["failure_class"])
        for s in payloads(run_dir, "step")
    ]


def scrub(data):
    """`data` without packet ids: random per evaluation, the one thing two runs' trees may differ in."""
    if isinstance(data, dict):
        return {k: scrub(v) for k, v in data.items() if k != "packet_id"}
    if isinstance(data, list):
        return [scrub(v) for v in data]
    return data


def tree_edits(run_dir: Path) -> list[dict]:
    return scrub(payloads(run_dir, "wm_edit"))


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance with two CPU slots, for the module (start-up costs seconds)."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


def test_a_ray_run_gives_the_local_runs_verdicts_and_tree_and_resumes(ray_cluster, tmp_path):
    (tmp_path / "local").mkdir()
    local_run = start_run(write_run_config(tmp_path / "local"), log_dir=tmp_path / "local" / "runs")
    ray_run = start_run(
        write_run_config(tmp_path, cluster=RAY), log_dir=tmp_path / "runs", open_pool=open_pool
    )
    assert ray_run.evaluated == local_run.evaluated == 4
    assert verdicts(ray_run.run_dir) == verdicts(local_run.run_dir)
    assert tree_edits(ray_run.run_dir) == tree_edits(local_run.run_dir)
    assert scrub(WorldModel.from_log(ray_run.run_dir).snapshot()) == scrub(local_run.wm.snapshot())
    assert verify_log(ray_run.run_dir).ok
    # the cluster settings are the run's config, so a resume finds them
    assert run_config_of(ray_run.run_dir).cluster.backend == "ray"
    (start,) = payloads(ray_run.run_dir, "infra_event")
    assert start["event"] == "pool_start" and len(start["evaluators"]) == 2
    nodes = {e["node"] for e in start["evaluators"]}
    for packet in payloads(ray_run.run_dir, "attempt"):
        env = packet["environment"]
        assert env["node"] in nodes and env["host"]  # the node that evaluated it
        # the packet names the run's own blob, as the local path's does, not the actor's scratch copy
        assert str(ray_run.run_dir.resolve() / "blobs") in env["replay_command"]
    assert all(p["environment"]["node"] is None for p in payloads(local_run.run_dir, "attempt"))

    # a resume reads the cluster settings from the log, starts a new pool and goes on
    result = start_run(None, resume=ray_run.run_dir, overrides={"budget.evaluations": 2}, open_pool=open_pool)
    assert [s["candidate"] for s in payloads(ray_run.run_dir, "step")] == [f"c{i:04d}" for i in range(6)]
    assert [e["event"] for e in payloads(ray_run.run_dir, "infra_event")] == ["pool_start", "pool_start"]
    (resumed,) = payloads(ray_run.run_dir, "run_resume")
    assert (
        resumed["config"]["cluster"]["backend"] == "ray" and resumed["config"]["cluster"]["evaluators"] == 2
    )
    assert verify_log(ray_run.run_dir).ok
    assert WorldModel.from_log(ray_run.run_dir).snapshot() == result.wm.snapshot()


def test_a_killed_evaluator_costs_no_attempt_and_is_logged_as_infrastructure(
    ray_cluster, tmp_path, monkeypatch
):
    """The evaluator under c0001 is killed once: c0001 is evaluated again by its replacement and
    keeps the harness's verdict. The evaluators under c0002 are killed on every try: c0002 is
    `skipped:evaluator_lost` after its one retry, and the run goes on."""
    from ksearch.cluster.pool import RayPool

    kills = {("c0001", 0), ("c0002", 0), ("c0002", 1)}
    killed: list[tuple[str, int]] = []

    def kill_under(pool, slot, job, attempt):
        if (job.candidate_id, attempt) in kills:
            killed.append((job.candidate_id, attempt))
            # mid-evaluation: a CPU evaluation takes seconds, its worker's start alone most of one
            threading.Timer(0.5, ray_cluster.kill, [slot.actor]).start()

    monkeypatch.setattr(RayPool, "_submitted", kill_under)
    cluster = {**RAY, "retries": 1}
    result = start_run(
        write_run_config(tmp_path, cluster=cluster), log_dir=tmp_path / "runs", open_pool=open_pool
    )
    assert sorted(killed) == sorted(kills)
    run_dir = result.run_dir
    steps = payloads(run_dir, "step")
    assert [s["candidate"] for s in steps] == ["c0000", "c0001", "c0002", "c0003"]  # no attempt lost
    # c0001's verdict is the harness's (it passes, as on the local path: see the test above)
    assert steps[1]["passed"] and steps[1]["failure_class"] is None
    assert packets_of(run_dir)[steps[1]["packet_id"]]["validation"]["passed"]
    assert steps[2]["failure_class"] == "skipped:evaluator_lost" and not steps[2]["passed"]
    assert all(s["failure_class"] != "worker_crash" for s in steps)
    events = [(e["event"], e["candidate"], e["attempt"]) for e in payloads(run_dir, "infra_event")]
    assert events == [
        ("pool_start", None, None),
        ("evaluator_lost", "c0001", 0),
        ("evaluator_started", None, None),
        ("evaluator_lost", "c0002", 0),
        ("evaluator_started", None, None),
        ("evaluator_lost", "c0002", 1),
        ("retries_exhausted", "c0002", 1),
        ("evaluator_started", None, None),
    ]
    # a candidate's events are logged with it: after the step before it, just before its attempt
    rows = [(line.row["kind"], line.row["payload"]) for line, _ in iter_rows(run_dir)]
    lost = next(i for i, (k, p) in enumerate(rows) if k == "infra_event" and p["candidate"] == "c0001")
    step_of = {p["candidate"]: i for i, (k, p) in enumerate(rows) if k == "step"}
    assert step_of["c0000"] < lost < step_of["c0001"]
    assert [k for k, _ in rows[lost : step_of["c0001"] + 1]] == [
        "infra_event",
        "infra_event",
        "attempt",
        "step",
    ]
    skipped = packets_of(run_dir)[steps[2]["packet_id"]]
    assert skipped["status"] == "skipped" and "infrastructure failure" in skipped["message"]
    assert verify_log(run_dir).ok
    assert result.progress.failures["skipped:evaluator_lost"] == 1


def test_a_pool_with_no_evaluator_left_stops_the_run_and_logs_why(ray_cluster, tmp_path, monkeypatch):
    """One evaluator, killed under c0002 (the second batch); its replacement's constructor raises, so
    it never starts: the pool is empty, the run stops with a message saying so, the second batch has
    no attempt (a resume proposes it again), and the log keeps the loss and the dropped slot."""
    from ksearch.cluster.pool import RayPool

    spawned = RayPool._spawn

    def kill_under(pool, slot, job, attempt):
        if job.candidate_id == "c0002":
            threading.Timer(0.5, ray_cluster.kill, [slot.actor]).start()

    def broken_after_start(pool):
        if not pool.slots:  # the pool's own start
            return spawned(pool)
        return pool._actor_class.remote(*pool._args[:3], "many")  # threads="many": the constructor raises

    monkeypatch.setattr(RayPool, "_submitted", kill_under)
    monkeypatch.setattr(RayPool, "_spawn", broken_after_start)
    cluster = {"backend": "ray", "evaluators": 1, "retries": 1}
    result = start_run(
        write_run_config(tmp_path, cluster=cluster), log_dir=tmp_path / "runs", open_pool=open_pool
    )
    assert "no evaluator is left" in result.stop_reason
    run_dir = result.run_dir
    assert [s["candidate"] for s in payloads(run_dir, "step")] == ["c0000", "c0001"]
    events = [(e["event"], e["candidate"]) for e in payloads(run_dir, "infra_event")]
    assert events == [("pool_start", None), ("evaluator_lost", "c0002"), ("evaluator_dropped", None)]
    dropped = payloads(run_dir, "infra_event")[-1]
    assert "its replacement failed to start" in dropped["error"]
    assert verify_log(run_dir).ok


@pytest.mark.slow  # a second Ray instance, in the killed driver, and two cold pools: over a minute
def test_a_killed_driver_resumes_on_the_cluster(ray_cluster, tmp_path):
    """kill -9 of the driver (its Ray instance and actors go with it); --resume replays the log,
    starts a new pool from the logged cluster settings and continues the candidate sequence."""
    cfg = write_run_config(tmp_path, cluster=RAY, budget={"evaluations": 40, "wall_s": 600})
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    run_dir = kill_run_after_steps([str(cfg)], tmp_path / "runs", env=env)
    done = len(payloads(run_dir, "step"))
    result = start_run(None, resume=run_dir, overrides={"budget.evaluations": 2}, open_pool=open_pool)
    steps = payloads(run_dir, "step")
    assert [s["candidate"] for s in steps] == [f"c{i:04d}" for i in range(done + 2)]
    assert verify_log(run_dir).ok
    assert [e["event"] for e in payloads(run_dir, "infra_event")] == ["pool_start", "pool_start"]
    (resumed,) = payloads(run_dir, "run_resume")
    assert resumed["config"]["cluster"]["backend"] == "ray"
    assert WorldModel.from_log(run_dir).snapshot() == result.wm.snapshot()


def test_a_pool_larger_than_the_cluster_is_refused_before_a_run_directory_exists(ray_cluster, tmp_path):
    cfg = write_run_config(tmp_path, cluster={"backend": "ray", "evaluators": 3})
    with pytest.raises(ConfigError, match="the Ray cluster has 2 CPUs"):
        start_run(cfg, log_dir=tmp_path / "runs", open_pool=open_pool)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_cluster_specs_in_the_config_and_on_the_command_line(tmp_path):
    assert RunConfig().cluster.backend == "local"
    cfg = load_run_config(write_run_config(tmp_path, cluster="ray://head:10001"))
    assert (cfg.cluster.backend, cfg.cluster.address) == ("ray", "ray://head:10001")
    with pytest.raises(ConfigError, match="cluster"):
        load_run_config(write_run_config(tmp_path, cluster="rya"))
    # --cluster replaces backend and address and keeps the rest of the block
    from ksearch.search.run import _override

    base = RunConfig.model_validate({"cluster": {"backend": "ray", "address": "ray://a:1", "retries": 5}})
    local = _override(base, {"cluster": "local"}).cluster
    assert (local.backend, local.address, local.retries) == ("local", None, 5)
    with pytest.raises(ConfigError, match="--cluster"):
        _override(base, {"cluster": "bogus"})
    # the entry point gives the pool (ksearch run: Ray's); a caller that gives none is told so
    with pytest.raises(ConfigError, match="open_pool=ksearch.cluster.open_pool"):
        start_run(write_run_config(tmp_path, cluster="ray"), log_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_cluster_ray_without_ray_installed_is_one_error_line(tmp_path):
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no ray here')\n")
    env = {"PYTHONPATH": str(fake.parent), "KSEARCH_LOG_DIR": str(tmp_path / "runs")}
    proc = ksearch("run", write_run_config(tmp_path), "--cluster", "ray", env=env)
    assert_clean_error(proc, "pip install -e '.[ray]'")
    assert not (tmp_path / "runs").exists()


def test_the_failure_catalog_names_the_infrastructure_class():
    from ksearch.evidence import FailureClass, Status, status_for

    lost = FailureClass("skipped:evaluator_lost")
    assert status_for(lost) is Status.SKIPPED and "infrastructure" in lost.meaning
