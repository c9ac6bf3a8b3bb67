"""The search loop end to end on CPU: a run logs every attempt, its tree rebuilds from the log, a
killed run resumes where it stopped, and the offline proposer learns from failures."""

import json
import random
from pathlib import Path

import pytest
from clitools import kill_run_after_steps
from runconfigs import SMALL_RUN, write_run_config

from ksearch.errors import ConfigError
from ksearch.log import iter_rows, verify_log
from ksearch.propose.base import Outcome, SearchState, Tried, knob_key
from ksearch.propose.offline import DEAD_END, OfflineProposer
from ksearch.propose.templates import template
from ksearch.search.run import start_run
from ksearch.task import load_task
from ksearch.worldmodel import ROOT, EditOp, NodeStatus, WorldModel


def config(tmp_path: Path, **changes) -> Path:
    return write_run_config(tmp_path, **changes)


def rows(run_dir: Path, kind: str) -> list[dict]:
    return [line.row for line, _ in iter_rows(run_dir) if line.row["kind"] == kind]


def payloads(run_dir: Path, kind: str) -> list[dict]:
    return [r["payload"] for r in rows(run_dir, kind)]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    return start_run(config(tmp), log_dir=tmp / "runs")


def test_a_run_logs_every_candidate_and_the_tree_rebuilds_from_the_log(small_run):
    settings = [(s["template"], knob_key(s["knobs"])) for s in payloads(small_run.run_dir, "step")]
    assert len(settings) == len(set(settings))  # no setting is evaluated twice
    steps = payloads(small_run.run_dir, "step")
    assert [s["candidate"] for s in steps] == ["c0000", "c0001", "c0002", "c0003"]
    attempts = payloads(small_run.run_dir, "attempt")
    assert {a["packet_id"].rsplit("@", 1)[0] for a in attempts} >= {
        s["packet_id"].rsplit("@", 1)[0] for s in steps
    }
    assert verify_log(small_run.run_dir).ok
    calls = payloads(small_run.run_dir, "proposer_call")
    assert [c["kind"] for c in calls].count("implement") == len(steps)
    assert calls[0]["kind"] == "propose_actions" and any(c["kind"] == "reflect" for c in calls)
    rebuilt = WorldModel.from_log(small_run.run_dir)
    assert rebuilt.snapshot() == small_run.wm.snapshot()
    # passing candidates carry a static estimate, never a measured reward, on a machine without a GPU
    for s in steps:
        if s["passed"]:
            assert s["score_basis"] == "static-estimate:h100" and 0 < s["score"] <= 1
    packet = json.loads(small_run.best_packet.read_text())
    assert packet["status"] == "pass" and packet["performance"] is None
    assert packet["unmeasured"]["reason"] == "unmeasured:no_device"
    assert small_run.best_kernel.read_text().startswith("# ksearch template:")


def test_a_killed_run_resumes_with_the_same_sequence_and_tree(tmp_path):
    cfg = config(tmp_path, budget={"evaluations": 40, "wall_s": 600})
    run_dir = kill_run_after_steps([str(cfg), "--device", "cpu"], tmp_path / "runs")
    done = len(rows(run_dir, "step"))
    last_seq = max(line.row["seq"] for line, _ in iter_rows(run_dir))
    result = start_run(None, resume=run_dir, overrides={"budget.evaluations": 2})  # 2 more
    steps = payloads(run_dir, "step")
    assert [s["candidate"] for s in steps] == [f"c{i:04d}" for i in range(done + 2)]
    assert verify_log(run_dir).ok
    assert (
        rows(run_dir, "run_resume")[0]["seq"] > last_seq
    )  # the sequence continues; verify checked the chain
    assert WorldModel.from_log(run_dir).snapshot() == result.wm.snapshot()
    assert not result.wm.actions(NodeStatus.trying)  # the visit the kill cut short was reopened


def test_a_run_reuses_identical_evaluations_of_an_earlier_run_with_the_same_settings(small_run, tmp_path):
    first = small_run.run_dir
    reuse = {**SMALL_RUN["eval"], "reuse": [str(first)]}
    again = start_run(config(tmp_path, eval=reuse), log_dir=tmp_path / "runs")  # same seed: same candidates
    packets = {p["packet_id"]: p for p in payloads(again.run_dir, "attempt")}
    steps = payloads(again.run_dir, "step")
    assert [s["score"] for s in steps] == [s["score"] for s in payloads(first, "step")]
    for s in steps:
        assert packets[s["packet_id"]]["reused_from"] == str(first)
    assert verify_log(again.run_dir).ok

    other = {**reuse, "seeds": [1]}  # verified on other inputs: nothing of the first run is reusable
    with pytest.raises(ConfigError, match=f"{first} was evaluated with other settings"):
        start_run(config(tmp_path, eval=other), log_dir=tmp_path / "other")
    assert not (tmp_path / "other").exists()  # refused before a run directory was made
    with pytest.raises(ConfigError, match="drop --dtype and --workloads"):  # a resume keeps them
        start_run(resume=first, overrides={"dtype": "bfloat16", "eval.workloads": ["gpt_oss_m7_n2880"]})


def test_only_packets_measured_with_the_same_gpu_driver_and_toolchain_are_reused(small_run):
    from ksearch.search.reuse import Reuse, measured_with, settings_of

    packet = next(p for p in payloads(small_run.run_dir, "attempt") if p["candidate"]["target"] == "h100")
    here = measured_with(packet["environment"])
    want = settings_of("rmsnorm", "float16", "cpu", payloads(small_run.run_dir, "run_start")[0]["config"])
    source = packet["candidate"]["source_hash"]
    assert Reuse([str(small_run.run_dir)], want, "h100").get(source, here) is not None
    other_triton = {**here, "toolchain": {**here["toolchain"], "triton": "0.0"}}
    assert Reuse([str(small_run.run_dir)], want, "h100").get(source, other_triton) is None
    assert Reuse([str(small_run.run_dir)], want, "b200").get(source, here) is None  # another primary


def test_the_random_baseline_samples_the_same_template_space(tmp_path):
    # seed 7 draws two row_block settings: quick to compile (some random settings take ptxas minutes)
    cfg = config(tmp_path, budget={"evaluations": 2, "wall_s": 600}, seed=7)
    result = start_run(
        cfg, log_dir=tmp_path / "runs", overrides={"search.strategy": "random"}
    )  # `--strategy random`
    steps = payloads(result.run_dir, "step")
    assert len(steps) == 2 and all(
        s["action_id"] is None and s["template"].startswith("rmsnorm/") for s in steps
    )
    assert len(result.wm) == 1  # the world model is not used


def _state(task="rmsnorm"):
    wm = WorldModel.new("t")
    return SearchState(task=load_task(task), wm=wm, tried=Tried(), best_score=None)


def test_the_plan_has_one_decision_per_strategy_axis_and_one_action_per_template():
    prop = OfflineProposer("rmsnorm")
    state = _state()
    for ops in prop.propose_actions(state, islands=2):
        state.wm.apply(ops)
    decisions = state.wm.children(ROOT)
    assert {d.title for d in decisions} == {t.decision for t in prop.templates}
    assert {a.attrs["island"] for a in state.wm.actions()} == {0, 1}
    assert {a.attrs["template"] for a in state.wm.actions()} == {t.id for t in prop.templates}


def test_implement_never_repeats_a_tried_setting_and_starts_from_the_action_knobs():
    prop = OfflineProposer("rmsnorm")
    state = _state()
    for ops in prop.propose_actions(state):
        state.wm.apply(ops)
    action = state.wm.frontier()[0]
    seen = set()
    for i in range(6):
        impl = prop.implement(state.wm.node(action.id), state, random.Random(i))
        key = knob_key(impl.attrs["knobs"])
        if i == 0:
            assert impl.attrs["knobs"] == action.attrs["knobs"]
        assert key not in seen
        seen.add(key)
        state.tried.add(
            impl.attrs["template"],
            impl.attrs["knobs"],
            Outcome(f"c{i}", impl.attrs["knobs"], True, 0.1 * i, None),
        )


def test_an_action_whose_every_setting_was_tried_is_exhausted_and_not_selected(tmp_path):
    from ksearch.propose.base import Exhausted
    from ksearch.search.loop import Search

    prop = OfflineProposer("rmsnorm")
    state = _state()
    for ops in prop.propose_actions(state):
        state.wm.apply(ops)
    action = state.wm.frontier()[0]
    settings = template(action.attrs["template"]).settings()
    for i, _knobs in enumerate(settings):
        assert not prop.exhausted(action, state)
        impl = prop.implement(action, state, random.Random(i))
        assert knob_key(impl.attrs["knobs"]) not in state.tried.keys.get(impl.attrs["template"], set())
        state.tried.add(
            impl.attrs["template"],
            impl.attrs["knobs"],
            Outcome(f"c{i}", impl.attrs["knobs"], True, 0.1, None),
        )
    assert prop.exhausted(action, state)
    with pytest.raises(Exhausted):
        prop.implement(action, state, random.Random(0))
    # the loop's selection passes over it
    search = Search.__new__(Search)
    search.wm, search.proposer, search.tried = state.wm, prop, state.tried
    search.task, search.progress = state.task, type("P", (), {"best": None, "evaluations": 0})()
    search.cfg = type("C", (), {"search": type("S", (), {"exploration": 0.0})()})()
    for island in (0, 1):
        chosen = search.select(island)
        assert chosen is not None and chosen.id != action.id  # the other templates' actions are still open


def test_reflect_prunes_a_strategy_that_keeps_failing_and_promotes_one_that_improves():
    prop = OfflineProposer("rmsnorm")
    state = _state()
    for ops in prop.propose_actions(state):
        state.wm.apply(ops)
    a, b = state.wm.frontier()[:2]
    fail = Outcome("c0", {}, False, None, "numerical_mismatch")
    state.wm.apply([EditOp(op="update", node=a.id, fields={"failures": DEAD_END, "attempts": DEAD_END})])
    ops = prop.reflect(state, state.wm.node(a.id), [fail])
    assert ops[0].op == "prune" and "numerical_mismatch" in ops[0].reason
    state.wm.apply(ops)
    assert state.wm.node(a.id).status is NodeStatus.pruned
    win = Outcome("c1", {}, True, 0.5, None)
    ops = prop.reflect(state, state.wm.node(b.id), [win])
    assert ops[0].op == "update" and ops[0].fields["priority"] > b.priority


def test_every_built_in_task_ships_a_gpu_config_that_names_its_real_workloads():
    from ksearch.search.config import load_run_config
    from ksearch.task.load import list_tasks

    configs = {
        p.stem: load_run_config(p) for p in (Path(__file__).parents[1] / "configs" / "gpu").glob("*.yaml")
    }
    assert set(configs) >= set(list_tasks())
    for name, cfg in configs.items():
        task = load_task(cfg.task)
        assert cfg.task == name and cfg.device == "cuda" and cfg.dtype in task.dtypes
        assert [task.workload(w).name for w in cfg.eval.workloads] == cfg.eval.workloads


def test_the_curve_lists_each_new_best_with_the_evaluation_that_reached_it(small_run):
    from ksearch.analysis.curve import best_curve

    steps = payloads(small_run.run_dir, "step")
    curve = best_curve(small_run.run_dir)
    assert curve.evaluations == len(steps)
    scored = [(n, s["score"]) for n, s in enumerate(steps, start=1) if s["score"] is not None]
    assert curve.best == max(s for _, s in scored)
    assert [s for _, s in curve.improvements] == sorted({s for _, s in curve.improvements})  # strictly rising
    assert curve.evals_to(1.0) == min(n for n, s in scored if s == curve.best)
    assert curve.evals_to(0.0) == scored[0][0]


def test_refinement_widens_ring_by_ring_around_the_best_setting():
    from ksearch.propose.offline import nearest_untried

    t = template("matmul/tma")
    center = t.default_knobs()
    ring1 = {knob_key(k) for k in t.neighbours(center)}
    tried = {knob_key(center)}
    picks = [nearest_untried(t, center, tried, random.Random(0))]
    assert picks[0][1] == 1 and knob_key(picks[0][0]) in ring1
    tried |= ring1  # the one-step ring is spent: the next pick is two moves away, not a uniform draw
    ring2 = {knob_key(n) for k in t.neighbours(center) for n in t.neighbours(k)} - ring1 - {knob_key(center)}
    for seed in range(5):
        knobs, steps = nearest_untried(t, center, tried, random.Random(seed))
        assert steps == 2 and knob_key(knobs) in ring2
    assert len(ring2) < len(t.settings()) / 4  # so a uniform draw would almost always land elsewhere


def test_the_pool_is_prepared_once_before_the_compile_thread_starts(tmp_path):
    # baselines are timed in the evaluator's process: a busy Python thread there turned a 5 us
    # baseline into 5 ms on an H100, so the run's compile thread must not exist yet when they are
    import threading

    from ksearch.propose.base import Implementation
    from ksearch.search.config import EvalSettings
    from ksearch.search.pipeline import Pipeline
    from ksearch.target import load_target

    class Stop(Exception):
        pass

    class Pool:
        device, profile, start_events, parallel, environment = "cpu", None, [], 1, {}

        def __init__(self):
            self.prepared: list[list[str]] = []

        def prepare(self, spec):
            self.prepared.append([t.name for t in threading.enumerate()])

        def evaluate_many(self, jobs, spec):
            raise Stop

        def close(self):
            pass

    pool = Pool()
    task = load_task("rmsnorm")
    pipeline = Pipeline(tmp_path, task, "float16", [load_target("h100")], pool, EvalSettings())
    batch = [("c0000", Implementation("x = 1\n", {}, "test"), {})]
    try:
        for _ in range(2):
            with pytest.raises(Stop):
                pipeline.run(batch)
    finally:
        pipeline.close()
    assert len(pool.prepared) == 1
    assert not any(name.startswith("ksearch-compile") for name in pool.prepared[0])
