"""Evidence: the EvidencePacket schema and the failure catalog."""

import json

from ksearch.evidence.catalog import MEANINGS, FailureClass, Status, status_for
from ksearch.evidence.packet import (
    SCHEMA_VERSION,
    Artifacts,
    Audit,
    Candidate,
    Diagnostic,
    Environment,
    EvidencePacket,
    OutputCheck,
    Performance,
    Unmeasured,
    Validation,
    Verdict,
    WorkloadTiming,
    eval_command,
    source_hash,
)

SCHEMA_PATH = "docs/evidence.schema.json"


def packet_json_schema() -> str:
    """The EvidencePacket JSON Schema as the text stored in docs/evidence.schema.json."""
    return json.dumps(EvidencePacket.model_json_schema(), indent=2, sort_keys=True) + "\n"


__all__ = [
    "MEANINGS",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "Artifacts",
    "Audit",
    "Candidate",
    "Diagnostic",
    "Environment",
    "EvidencePacket",
    "FailureClass",
    "OutputCheck",
    "Performance",
    "Status",
    "Unmeasured",
    "Validation",
    "Verdict",
    "WorkloadTiming",
    "eval_command",
    "packet_json_schema",
    "source_hash",
    "status_for",
]
