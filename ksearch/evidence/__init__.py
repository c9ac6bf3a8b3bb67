"""Evidence: the EvidencePacket schema and the failure catalog."""

import json

from ksearch.evidence.catalog import MEANINGS, FailureClass, Status, status_for
from ksearch.evidence.language import BUILTIN_LANGUAGES, Language, known_languages
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
    Severity,
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
    "BUILTIN_LANGUAGES",
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
    "Language",
    "OutputCheck",
    "Performance",
    "Severity",
    "Status",
    "Unmeasured",
    "Validation",
    "Verdict",
    "WorkloadTiming",
    "eval_command",
    "known_languages",
    "packet_json_schema",
    "source_hash",
    "status_for",
]
