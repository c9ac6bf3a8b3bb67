"""Fixtures and hooks shared by every test file.

- `evaluator`: a CPU evaluator with warm workers, one per test module.
- `corpus`: the ISA corpus as shipped (no local chapters), one per test module.
- `@pytest.mark.gpu` skips by itself when torch sees no CUDA or ROCm device.
- No test reads or writes the user's caches: HOME, the XDG directories, Triton's and torch's caches
  and ksearch's cache root point into a temporary home for the whole session, and each test gets its
  own run-log directory. The home is per session, not per test, because what it caches (compiled
  candidates, the judges' Triton builds, measured peaks) costs seconds to minutes to rebuild and
  tests already tolerate a warm cache; tests that check caching pass their own `cache_dir`. (It
  must be session-wide anyway: module fixtures, such as evaluators and warmed runs, are set up
  before any per-test fixture and would otherwise see the user's home.)
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ksearch.context import Corpus
    from ksearch.harness.evaluate import Evaluator

# Everything jail.env_for points into a worker's directory, but the temp-dir variables: the tests'
# own scratch stays where pytest and the harness put it.
_KEEP_TEMP = {"TMPDIR", "TMP", "TEMP", "XDG_RUNTIME_DIR"}


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary HOME for the session, with every cache location inside it."""
    from ksearch.harness.jail import env_for
    from ksearch.settings import CACHE_DIR

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env_for(home).items():
            if name not in _KEEP_TEMP:
                mp.setenv(name, value)
        # explicitly: a cache root set in the developer's shell would win over HOME (and over the
        # old name, KSEARCH_CACHE, which is only read when this one is unset)
        mp.setenv(CACHE_DIR.name, str(home / ".cache" / "ksearch"))
        yield home


@pytest.fixture(autouse=True)
def isolated_run_logs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs started without an explicit log directory write here, not into the checkout."""
    from ksearch.settings import LOG_DIR

    log_dir = tmp_path_factory.mktemp("runs")
    monkeypatch.setenv(LOG_DIR.name, str(log_dir))
    return log_dir


@pytest.fixture(scope="module")
def evaluator() -> Iterator[Evaluator]:
    from ksearch.harness.evaluate import Evaluator

    with Evaluator("cpu", timeout_s=300) as ev:
        yield ev


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    from ksearch.context import load_corpus

    return load_corpus(include_local=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return  # no torch import for runs that need no device
    import torch

    if torch.cuda.is_available():  # true for ROCm builds of torch too
        return
    skip = pytest.mark.skip(reason="needs a CUDA or ROCm device visible to torch")
    for item in gpu_items:
        item.add_marker(skip)


OLD_LOG = Path(__file__).parent / "fixtures" / "logs" / "old_rmsnorm_run.tar.gz"


@pytest.fixture
def old_run(tmp_path):
    """A fresh copy of a 4-candidate CPU quickstart run written before typed rows. Kept as an archive:
    the log is data (its blobs are the old templates' output), and each test may append to its copy."""
    with tarfile.open(OLD_LOG) as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path / "old_rmsnorm_run"
