import json
import shlex
from pathlib import Path

import pytest
from pydantic import ValidationError

from ksearch.evidence import (
    MEANINGS,
    SCHEMA_PATH,
    Candidate,
    Environment,
    EvidencePacket,
    FailureClass,
    Performance,
    Status,
    Unmeasured,
    Validation,
    WorkloadTiming,
    eval_command,
    packet_json_schema,
    source_hash,
    status_for,
)

ROOT = Path(__file__).resolve().parents[1]


def _candidate(**kw):
    return Candidate(
        source_hash=source_hash("def run(x, out): pass"),
        language="triton",
        target="h100",
        dtype="float16",
        shape_suite=["m1_n4096"],
        **kw,
    )


def _env():
    cmd = eval_command("rmsnorm", "cand.py", "h100", "float16", [0, 1], ["m1_n4096"])
    return Environment(ksearch_version="0.1.0", replay_command=cmd, tolerances={"atol": 1e-2, "rtol": 1e-2})


def passing_packet() -> EvidencePacket:
    timing = WorkloadTiming(
        workload="m1_n4096",
        median_us=3.2,
        iqr_us=0.1,
        cv=0.02,
        samples=100,
        baseline_median_us=6.4,
        speedup=2.0,
        flops=4 * 4096,
        bytes=3 * 2 * 4096,
        sol_us=1.6,
        sol_fraction=0.5,
    )
    return EvidencePacket(
        packet_id="att-1",
        task="rmsnorm",
        candidate=_candidate(),
        environment=_env(),
        validation=Validation(passed=True, backend="cuda:NVIDIA H100", workloads_checked=["m1_n4096"]),
        performance=Performance(device="NVIDIA H100", workloads=[timing], speedup_geomean=2.0, sol_score=0.5),
        status=Status.PASS,
        reward=0.5,
    )


def failing_packet() -> EvidencePacket:
    return EvidencePacket(
        packet_id="att-2",
        task="rmsnorm",
        candidate=_candidate(parent_id="att-1"),
        environment=_env(),
        validation=Validation(
            passed=False,
            backend="triton-interpreter",
            workloads_checked=["m1_n4096"],
            reason="max abs err 0.5 > atol",
        ),
        unmeasured=Unmeasured(reason=FailureClass.UNMEASURED_NOT_VERIFIED),
        status=Status.FAIL,
        failure_class=FailureClass.NUMERICAL_MISMATCH,
        message="max abs err 0.5 > atol 0.01",
    )


@pytest.mark.parametrize("make", [passing_packet, failing_packet])
def test_packet_round_trips_through_json(make):
    packet = make()
    text = packet.model_dump_json()
    again = EvidencePacket.model_validate_json(text)
    assert again == packet
    assert json.loads(text)["schema_version"] == 1


def test_packet_rejects_inconsistent_status():
    good = passing_packet().model_dump()
    with pytest.raises(ValidationError, match="no failure_class"):
        EvidencePacket.model_validate({**good, "failure_class": "nonfinite"})
    bad = failing_packet().model_dump()
    with pytest.raises(ValidationError, match="needs a failure_class"):
        EvidencePacket.model_validate({**bad, "failure_class": None})
    with pytest.raises(ValidationError, match="implies status error"):
        EvidencePacket.model_validate({**bad, "failure_class": "compile_error"})
    with pytest.raises(ValidationError, match="exactly one of performance and unmeasured"):
        EvidencePacket.model_validate({**good, "unmeasured": {"reason": "unmeasured:no_device"}})
    with pytest.raises(ValidationError, match="unmeasured:"):
        EvidencePacket.model_validate({**bad, "unmeasured": {"reason": "timeout"}})
    with pytest.raises(ValidationError, match="schema_version"):
        EvidencePacket.model_validate({**good, "schema_version": 2})
    with pytest.raises(ValidationError, match="Extra inputs"):
        EvidencePacket.model_validate({**good, "surprise": 1})


def test_schema_file_matches_the_model():
    stored = (ROOT / SCHEMA_PATH).read_text()
    assert stored == packet_json_schema(), "run `ksearch schema --out docs/evidence.schema.json`"


def test_failure_catalog_is_complete_and_consistent():
    assert set(MEANINGS) == set(FailureClass)
    assert all(MEANINGS[f] and "\n" not in MEANINGS[f] for f in FailureClass)
    hacks = [f for f in FailureClass if f.is_reward_hack]
    assert len(hacks) >= 8 and all(f.value.startswith("reward_hack:") for f in hacks)
    assert status_for(FailureClass.COMPILE_ERROR) is Status.ERROR
    assert status_for(FailureClass.NUMERICAL_MISMATCH) is Status.FAIL
    assert status_for(FailureClass.REWARD_HACK_STREAM) is Status.FAIL
    assert status_for(FailureClass.SKIPPED_BF16_INTERPRETER) is Status.SKIPPED
    for name in (
        "compile_error",
        "audit:missing_tensor_core_path",
        "audit:register_spill",
        "numerical_mismatch",
        "nonfinite",
        "timeout",
        "unmeasured:no_device",
    ):
        FailureClass(name)  # the classes DESIGN.md names exist


def test_replay_command_quotes_its_arguments():
    cmd = eval_command("rmsnorm", "my cand.py", "h100", "float16", [0, 7], ["m1_n4096", "m3000_n7168"])
    argv = shlex.split(cmd)
    assert argv[:3] == ["ksearch", "eval", "my cand.py"]
    assert argv[argv.index("--task") + 1] == "rmsnorm"
    assert argv[argv.index("--seeds") + 1] == "0,7"
    assert argv[argv.index("--workloads") + 1] == "m1_n4096,m3000_n7168"
