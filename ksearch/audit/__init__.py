"""Emitted-code audit: instruction families, registers, spills, shared memory/LDS, occupancy."""

from ksearch.audit.core import audit_compile, audit_failure, max_intensity, occupancy
from ksearch.audit.isa import families_in, mnemonics

__all__ = ["audit_compile", "audit_failure", "families_in", "max_intensity", "mnemonics", "occupancy"]
