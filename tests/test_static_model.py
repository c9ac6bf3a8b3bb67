"""`ksearch bench static-model`: the rank correlation it reports, and its refusal of untimed runs."""

import pytest
from clitools import assert_clean_error, ksearch
from runconfigs import write_run_config

from ksearch.search.run import start_run
from ksearch.selfbench.static_model import spearman


def test_spearman_ranks_with_shared_ranks_for_ties():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # x ranks 1, 2.5, 2.5, 4 against y ranks 1..4: cov 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)
    assert spearman([1, 2], [2, 1]) is None  # too few pairs to rank
    assert spearman([5, 5, 5], [1, 2, 3]) is None  # no spread


def test_a_run_with_nothing_timed_is_refused_with_a_reason(tmp_path):
    run = start_run(
        write_run_config(tmp_path, budget={"evaluations": 1, "wall_s": 600}), log_dir=tmp_path / "runs"
    )
    result = ksearch("bench", "static-model", str(run.run_dir))
    assert_clean_error(result, "no timed, passing attempt")
