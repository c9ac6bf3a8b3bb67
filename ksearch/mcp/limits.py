"""How much judging the MCP server does for agents: evaluations at once, and evaluations per session.

An evaluation holds a sandboxed worker and a judge (and, on a GPU, the device) for seconds to
minutes, so the server runs at most `concurrency` at a time (callers beyond that wait their turn)
and each client session may start at most `budget` of them; one more is refused with an `error:`
line, before anything runs. Evaluators are kept warm between calls, one per setting (device,
timeout, timing budget) and per concurrent slot, and closed with the server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar

from ksearch.errors import KsearchError


class EvaluationBudgetError(KsearchError):
    """A session asked for more evaluations than the server allows it."""


class Closable(Protocol):
    def close(self) -> None: ...


# What an evaluator is made from: (device, timeout_s, bench_budget_s).
EvaluatorKey = tuple[str, float, float]
E = TypeVar("E", bound=Closable)


class EvaluationLimits(Generic[E]):
    """A semaphore over evaluations, a per-session budget, and the warm evaluators."""

    def __init__(self, concurrency: int, budget: int, make: Callable[[EvaluatorKey], E]):
        if concurrency < 1:
            raise KsearchError(f"--concurrency must be at least 1, got {concurrency}")
        if budget < 0:
            raise KsearchError(f"--eval-budget must be 0 or more, got {budget}")
        self.concurrency, self.budget = concurrency, budget
        self._make = make
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._spent: dict[str, int] = {}  # session -> evaluations started
        self._idle: dict[EvaluatorKey, list[E]] = {}
        self._all: list[E] = []

    def spent(self, session: str) -> int:
        with self._lock:
            return self._spent.get(session, 0)

    def charge(self, session: str) -> int:
        """Count one evaluation against `session`'s budget; the number it is, or an error when spent."""
        with self._lock:
            n = self._spent.get(session, 0)
            if n >= self.budget:
                raise EvaluationBudgetError(
                    f"this session has used its evaluation budget ({n} of {self.budget}); start a new "
                    "session, or restart the server with a larger --eval-budget"
                )
            self._spent[session] = n + 1
            return n + 1

    @contextmanager
    def evaluator(self, key: EvaluatorKey) -> Iterator[E]:
        """A warm evaluator for `key`, held for the block; waits while `concurrency` are in use."""
        with self._slots:
            with self._lock:
                idle = self._idle.setdefault(key, [])
                ev = idle.pop() if idle else None
            if ev is None:
                ev = self._make(key)  # outside the lock: starting workers takes a while
                with self._lock:
                    self._all.append(ev)
            try:
                yield ev
            finally:
                with self._lock:
                    self._idle[key].append(ev)

    def close(self) -> None:
        with self._lock:
            evaluators, self._all, self._idle = self._all, [], {}
        for ev in evaluators:
            ev.close()
