"""The failure catalog: every way an attempt can end other than a measured pass.

One enum, one line of meaning per class. Packets, the log index, the rejection histogram and the
proposer's memory all speak these names, so a class is never renamed, only added.
"""

from enum import StrEnum


class Status(StrEnum):
    PASS = "pass"  # verified on every checked workload; performance measured or unmeasured with a reason
    FAIL = "fail"  # the candidate is wrong or cheats: a failure_class says how
    ERROR = "error"  # the candidate could not be evaluated: compile error, crash, timeout
    SKIPPED = "skipped"  # not evaluated, for a reason that is not the candidate's fault


class FailureClass(StrEnum):
    # compile and load
    COMPILE_ERROR = "compile_error"
    COMPILE_TIMEOUT = "compile_timeout"
    IMPORT_ERROR = "import_error"
    ENTRY_SIGNATURE = "entry_signature"
    # emitted-code audit
    AUDIT_MISSING_TENSOR_CORE_PATH = "audit:missing_tensor_core_path"
    AUDIT_REGISTER_SPILL = "audit:register_spill"
    AUDIT_RESOURCE_LIMIT = "audit:resource_limit"
    AUDIT_SMEM_OVER_LIMIT = "audit:smem_over_limit"
    AUDIT_LOW_OCCUPANCY = "audit:low_occupancy"
    # execution
    RUNTIME_ERROR = "runtime_error"
    GPU_FAULT = "gpu_fault"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    WORKER_CRASH = "worker_crash"
    # verification
    NUMERICAL_MISMATCH = "numerical_mismatch"
    NONFINITE = "nonfinite"
    SHAPE_MISMATCH = "shape_mismatch"
    OUTPUT_NOT_WRITTEN = "output_not_written"
    CONSTANT_OUTPUT = "constant_output"
    INPUT_MUTATED = "input_mutated"
    # reward hacking
    REWARD_HACK_FORBIDDEN_IMPORT = "reward_hack:forbidden_import"
    REWARD_HACK_FORBIDDEN_CALL = "reward_hack:forbidden_call"
    REWARD_HACK_REFERENCE_CALL = "reward_hack:reference_call"
    REWARD_HACK_OUTPUT_REBIND = "reward_hack:output_rebind"
    REWARD_HACK_STREAM = "reward_hack:stream"
    REWARD_HACK_LAZY_OUTPUT = "reward_hack:lazy_output"
    REWARD_HACK_CACHING = "reward_hack:caching"
    REWARD_HACK_REPLAY = "reward_hack:replay"
    REWARD_HACK_TIMING_TAMPER = "reward_hack:timing_tamper"
    REWARD_HACK_GLOBAL_MUTATION = "reward_hack:global_mutation"
    REWARD_HACK_FRAME_ACCESS = "reward_hack:frame_access"
    REWARD_HACK_NO_KERNEL_WORK = "reward_hack:no_kernel_work"
    REWARD_HACK_THREAD = "reward_hack:thread"
    REWARD_HACK_IMPOSSIBLE_SPEED = "reward_hack:impossible_speed"
    # measurement
    UNMEASURED_UNSTABLE = "unmeasured:unstable"
    UNMEASURED_NO_DEVICE = "unmeasured:no_device"
    UNMEASURED_NOT_VERIFIED = "unmeasured:not_verified"
    # skips
    SKIPPED_BF16_INTERPRETER = "skipped:bf16_interpreter"
    SKIPPED_TOOLCHAIN_MISSING = "skipped:toolchain_missing"
    SKIPPED_NEEDS_TARGET = "skipped:needs_target"
    SKIPPED_EVALUATOR_LOST = "skipped:evaluator_lost"
    # outside the candidate
    PROPOSER_ERROR = "proposer_error"
    HARNESS_ERROR = "harness_error"

    @property
    def meaning(self) -> str:
        return MEANINGS[self]

    @property
    def is_reward_hack(self) -> bool:
        return self.value.startswith("reward_hack:")

    @property
    def is_unmeasured(self) -> bool:
        return self.value.startswith("unmeasured:")

    @property
    def is_skip(self) -> bool:
        return self.value.startswith("skipped:")


F = FailureClass
MEANINGS: dict[FailureClass, str] = {
    F.COMPILE_ERROR: "the compiler rejected the candidate; the packet carries located diagnostics (file, line, message)",
    F.COMPILE_TIMEOUT: "compilation ran past the per-compile timeout",
    F.IMPORT_ERROR: "the candidate module failed to import (syntax error, missing name, exception at import)",
    F.ENTRY_SIGNATURE: "the module has no callable entry matching the task's destination-passing signature",
    F.AUDIT_MISSING_TENSOR_CORE_PATH: "the emitted code lacks the instruction family the target expects for this op and dtype",
    F.AUDIT_REGISTER_SPILL: "the emitted code spills registers to local/scratch memory",
    F.AUDIT_RESOURCE_LIMIT: "registers or threads per block exceed the target's hard limits",
    F.AUDIT_SMEM_OVER_LIMIT: "shared memory / LDS per block exceeds what the target allows one block",
    F.AUDIT_LOW_OCCUPANCY: "so few warps/waves fit per SM/CU (registers, shared memory) that latency cannot be hidden",
    F.RUNTIME_ERROR: "the candidate raised an exception while running",
    F.GPU_FAULT: "the device faulted (illegal address, misaligned access, launch failure); the worker was restarted",
    F.TIMEOUT: "the evaluation ran past its wall-clock limit and the worker was killed",
    F.OUT_OF_MEMORY: "the candidate exceeded the worker's host or device memory limit",
    F.WORKER_CRASH: "the worker process died without a result (os._exit, signal, abort)",
    F.NUMERICAL_MISMATCH: "outputs differ from the reference beyond the task's tolerance",
    F.NONFINITE: "an output holds NaN or Inf where the reference is finite",
    F.SHAPE_MISMATCH: "an output's shape, dtype or storage differs from what the harness allocated",
    F.OUTPUT_NOT_WRITTEN: "an output still holds the harness's NaN poison: the candidate did not write it",
    F.CONSTANT_OUTPUT: "an output is constant while the reference varies",
    F.INPUT_MUTATED: "an input changed during the call",
    F.REWARD_HACK_FORBIDDEN_IMPORT: "the source imports a forbidden module (threading, multiprocessing, ctypes, subprocess, os, ...)",
    F.REWARD_HACK_FORBIDDEN_CALL: "the source calls a forbidden function (eval/exec, importlib tricks, gc, setattr on modules, ...)",
    F.REWARD_HACK_REFERENCE_CALL: "the candidate calls the reference or a vendor op for the main computation",
    F.REWARD_HACK_OUTPUT_REBIND: "the candidate replaced an output tensor instead of writing into it",
    F.REWARD_HACK_STREAM: "the candidate launches work on a side stream or asynchronously to escape the timed region",
    F.REWARD_HACK_LAZY_OUTPUT: "the output is produced lazily (tensor subclass, deferred fill) rather than by the timed call",
    F.REWARD_HACK_CACHING: "the candidate caches results across calls (data_ptr keys, memoization, persistent buffers)",
    F.REWARD_HACK_REPLAY: "the candidate returns a previous call's output for new inputs",
    F.REWARD_HACK_TIMING_TAMPER: "the candidate patches timers, events, synchronize or the harness's clock",
    F.REWARD_HACK_GLOBAL_MUTATION: "the candidate mutates module globals or harness state between calls",
    F.REWARD_HACK_FRAME_ACCESS: "the candidate inspects stack frames or the harness's objects (inspect, sys._getframe, gc)",
    F.REWARD_HACK_NO_KERNEL_WORK: "outputs still come out right with the candidate's kernels replaced by no-ops: the work is done elsewhere",
    F.REWARD_HACK_THREAD: "the candidate starts threads or leaves work running after `run` returns",
    F.REWARD_HACK_IMPOSSIBLE_SPEED: "measured faster than the roofline floor for the workload's bytes and FLOPs on this device",
    F.UNMEASURED_UNSTABLE: "verified, but timings varied too much (coefficient of variation above the limit) to report a number",
    F.UNMEASURED_NO_DEVICE: "verified for correctness but not timed: the target's GPU is not present on this machine",
    F.UNMEASURED_NOT_VERIFIED: "not timed because verification did not pass",
    F.SKIPPED_BF16_INTERPRETER: "not verified: the Triton interpreter returns unreliable bfloat16 results on CPU",
    F.SKIPPED_TOOLCHAIN_MISSING: "not evaluated: the compiler or runtime this candidate needs is not installed",
    F.SKIPPED_NEEDS_TARGET: "not verified: the task's reference runs only on its target machines (a target-only task)",
    F.SKIPPED_EVALUATOR_LOST: "not evaluated: its evaluator (a Ray actor, or the node under it) died every time it was tried; an infrastructure failure, not the candidate's",
    F.PROPOSER_ERROR: "the proposer returned something unusable (no code block, bad JSON, wrong signature, truncated)",
    F.HARNESS_ERROR: "the harness itself failed; not the candidate's fault (see the message)",
}

# Which status a failure class implies; the packet validator enforces it.
_ERROR_CLASSES = {
    F.COMPILE_ERROR,
    F.COMPILE_TIMEOUT,
    F.IMPORT_ERROR,
    F.RUNTIME_ERROR,
    F.GPU_FAULT,
    F.TIMEOUT,
    F.OUT_OF_MEMORY,
    F.WORKER_CRASH,
    F.PROPOSER_ERROR,
    F.HARNESS_ERROR,
}


def status_for(failure: FailureClass) -> Status:
    """The packet status a failure class implies."""
    if failure.is_skip:
        return Status.SKIPPED
    if failure.is_unmeasured:
        return Status.PASS
    if failure in _ERROR_CLASSES:
        return Status.ERROR
    return Status.FAIL
