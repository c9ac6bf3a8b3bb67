"""The compile service: many candidates x many targets, in parallel, cached, each with a timeout.

A compile runs in a pebble process pool: a compile that hangs is killed at its timeout (the pool
replaces the worker) and reported as compile_timeout; a compiler that crashes its process is a
compile_error naming the exit. Results are cached under a key of (source hash, language, target,
toolchain versions, task shapes, dtype, flags): a warm cache returns the stored result and its
artifacts without compiling. Timeouts and crashes are not cached: they may not recur.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING

from pebble import ProcessExpired, ProcessPool
from pydantic import BaseModel, ConfigDict

from ksearch import settings
from ksearch.compile.registry import compiler, detect_language
from ksearch.compile.result import CompileResult
from ksearch.errors import ConfigError, KsearchError
from ksearch.evidence import FailureClass, Language, source_hash
from ksearch.paths import read_text, write_atomic

if TYPE_CHECKING:
    from ksearch.task import Task

RESULT = "result.json"
DEFAULT_TIMEOUT_S = 180.0


class CompileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source_path: str
    task: str
    target: str
    language: Language | None = None
    dtype: str | None = None
    workloads: tuple[str, ...] | None = None  # launches captured on these (a run's); None: every one


def default_cache_dir() -> Path:
    return settings.cache_root() / "compile"


def _task(task_name: str, workloads: Sequence[str] | None) -> Task:
    from ksearch.task import load_task

    task = load_task(task_name)
    return task.only(workloads) if workloads else task


def _task_fingerprint(task_name: str, workloads: Sequence[str] | None) -> str:
    # Specializations depend on the task's shapes and dtypes, so its contract is part of the key.
    return hashlib.sha256(_task(task_name, workloads).spec.model_dump_json().encode()).hexdigest()


# raised whenever a compile result records more than before, so that a cached one is not read without it
# (2: the bytes of each launch's tensor arguments, which the static estimate charges re-reads by)
RESULT_FORMAT = 2


def cache_key(
    source: str,
    language: str,
    target: str,
    arch: str,
    dtype: str | None,
    task_fp: str,
    toolchain: dict,
    flags: dict | None = None,
) -> str:
    material = {
        "source": source_hash(source),
        "language": language,
        "target": target,
        "arch": arch,
        "dtype": dtype,
        "task": task_fp,
        "toolchain": toolchain,
        "flags": flags or {},
        "format": RESULT_FORMAT,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _entry_dir(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / key


def load_cached(cache_dir: Path, key: str) -> CompileResult | None:
    path = _entry_dir(cache_dir, key) / RESULT
    try:
        result = CompileResult.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None  # absent or half-written: compile again
    return result.model_copy(update={"cached": True})


def store(cache_dir: Path, result: CompileResult) -> None:
    entry = _entry_dir(cache_dir, result.key)
    entry.mkdir(parents=True, exist_ok=True)
    # result.json appears last and whole: it marks a complete entry
    write_atomic(entry / RESULT, result.model_dump_json(indent=1))


def compile_one(
    source_path: str,
    language: Language,
    task_name: str,
    target_name: str,
    dtype: str | None,
    outdir: str,
    timeout_s: float,
    workloads: Sequence[str] | None = None,
) -> dict:
    """Worker body: one candidate for one target. Runs in a pool process; returns a CompileResult dict."""
    from ksearch.target import load_target

    path = Path(source_path)
    source = read_text(path)
    profile = load_target(target_name)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    result = compiler(language).compile(
        source, path, _task(task_name, workloads), profile, out, dtype=dtype, timeout_s=timeout_s
    )
    return result.model_dump(mode="json")


def compile_many(
    requests: list[CompileRequest],
    *,
    cache_dir: Path | None = None,
    jobs: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    use_cache: bool = True,
    on_result: Callable[[CompileRequest, CompileResult], None] | None = None,
) -> list[CompileResult]:
    """Compile every request (candidate x target), in parallel, from the cache where it can."""
    from ksearch.target import load_target

    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    toolchains: dict[str, dict] = {}
    fingerprints: dict[tuple[str, tuple[str, ...] | None], str] = {}
    results: list[CompileResult | None] = [None] * len(requests)
    pending: list[tuple[int, str, Language, str]] = []
    for i, req in enumerate(requests):
        path = Path(req.source_path)
        try:
            source = read_text(path)
        except OSError as e:
            raise ConfigError(f"candidate {path} cannot be read ({e.strerror}); pass an existing file") from e
        language = req.language or detect_language(path, source)
        profile = load_target(req.target)
        if language not in toolchains:  # asking a toolchain its versions runs its tools: once a batch
            toolchains[language] = compiler(language).toolchain()
        toolchain = toolchains[language]
        task_key = (req.task, req.workloads)
        if task_key not in fingerprints:  # loading and hashing a task once a batch, not once a request
            fingerprints[task_key] = _task_fingerprint(req.task, req.workloads)
        fp = fingerprints[task_key]
        key = cache_key(source, language, profile.name, profile.arch, req.dtype, fp, toolchain)
        hit = load_cached(cache_dir, key) if use_cache else None
        if hit is not None:
            results[i] = hit
            if on_result:
                on_result(req, hit)
        else:
            pending.append((i, key, language, profile.arch))

    if pending:
        with ProcessPool(max_workers=jobs or min(len(pending), os.cpu_count() or 1)) as pool:
            futures = []
            for i, key, language, arch in pending:
                req = requests[i]
                args = (
                    req.source_path,
                    language,
                    req.task,
                    req.target,
                    req.dtype,
                    str(_entry_dir(cache_dir, key)),
                    timeout_s,
                    req.workloads,
                )
                futures.append(
                    (
                        i,
                        key,
                        language,
                        arch,
                        time.perf_counter(),
                        pool.schedule(compile_one, args=args, timeout=timeout_s),
                    )
                )
            for i, key, language, arch, t0, fut in futures:
                req = requests[i]
                cacheable = True
                try:
                    result = CompileResult.model_validate(fut.result())
                except FutureTimeout:
                    cacheable = False
                    result = _failed(
                        req,
                        language,
                        arch,
                        FailureClass.COMPILE_TIMEOUT,
                        f"compile ran past its {timeout_s:g} s timeout and was killed",
                    )
                except ProcessExpired as e:
                    cacheable = False
                    result = _failed(
                        req,
                        language,
                        arch,
                        FailureClass.COMPILE_ERROR,
                        f"the compiler process died (exit code {e.exitcode}) while compiling",
                    )
                except KsearchError:
                    raise  # the request itself is bad (unknown task, unreadable file): the user must act
                except Exception as e:  # a backend bug: report it on this attempt, keep the batch going
                    cacheable = False
                    result = _failed(
                        req,
                        language,
                        arch,
                        FailureClass.HARNESS_ERROR,
                        f"internal error in the {language} backend: {type(e).__name__}: {e}",
                    )
                result = result.model_copy(
                    update={
                        "key": key,
                        "toolchain": toolchains[language],
                        "seconds": result.seconds or time.perf_counter() - t0,
                    }
                )
                if cacheable and result.failure_class is not FailureClass.SKIPPED_TOOLCHAIN_MISSING:
                    store(cache_dir, result)
                results[i] = result
                if on_result:
                    on_result(req, result)
    return [r for r in results if r is not None]


def _failed(
    req: CompileRequest, language: Language, arch: str, failure: FailureClass, message: str
) -> CompileResult:
    return CompileResult(
        ok=False, language=language, target=req.target, arch=arch, failure_class=failure, message=message
    )
