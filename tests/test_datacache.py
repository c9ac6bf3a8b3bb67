"""The evaluator's input cache: an evaluation larger than the cap still hits for what fits (a plain
LRU cache, drawing a suite in order, evicts each entry just before it is needed again)."""

from __future__ import annotations

import torch

from ksearch.harness.datacache import InputCache, entry_bytes


def entry(n_bytes: int):
    return [torch.zeros(n_bytes, dtype=torch.uint8)], {"out": torch.zeros(0)}


def evaluate(cache: InputCache, keys: list[str], size: int = 100) -> list[str]:
    """Fetch every key of one evaluation in order; the keys that had to be drawn."""
    drawn = []

    def make(k):
        def draw():
            drawn.append(k)
            return entry(size)

        return draw

    for k in keys:
        cache.get(k, make(k), set(keys))
    return drawn


def test_a_suite_larger_than_the_cap_misses_only_what_does_not_fit():
    suite = ["a", "b", "c", "d", "e"]  # 500 bytes against a cap of 300
    cache = InputCache(cap_bytes=300)
    assert evaluate(cache, suite) == suite
    assert evaluate(cache, suite) == ["d", "e"]  # a, b, c stayed; LRU would have drawn all five again
    assert evaluate(cache, suite) == ["d", "e"]
    assert cache.held_bytes == 300 and len(cache) == 3


def test_room_is_made_from_keys_the_evaluation_does_not_need_least_recently_used_first():
    cache = InputCache(cap_bytes=300)
    evaluate(cache, ["a", "b", "c"])
    evaluate(cache, ["b"])  # a is now the least recently used
    assert evaluate(cache, ["x", "c"]) == ["x"]  # x needs room: a goes, not c (needed), not b (newer)
    assert "a" not in cache and all(k in cache for k in "bcx")
    assert evaluate(cache, ["y", "z", "x"]) == ["y", "z"]  # b and c make room; x stays
    assert "x" in cache and "y" in cache and "z" in cache


def test_an_entry_larger_than_the_cap_is_returned_but_not_kept():
    cache = InputCache(cap_bytes=50)
    got = cache.get("big", lambda: entry(100), {"big"})
    assert entry_bytes(got) == 100 and "big" not in cache and cache.held_bytes == 0
    assert cache.misses == 1 and cache.hits == 0


def test_a_warm_evaluation_draws_no_input_again(evaluator):
    """The harness bench's overhead figures count the warm evaluation's input sets: on the CPU suite
    (well under the cache's cap) every set the first evaluation drew is found cached the second time."""
    from pathlib import Path

    from ksearch.selfbench.harness_bench import overhead

    got = overhead(evaluator, Path(__file__).parent / "honest" / "rmsnorm_row.py")["full_suite"]
    assert got["status"] == "pass"
    assert got["input_sets_drawn"] == 0 and got["input_sets_cached"] > 0
    # the first evaluation's figures come too (on a GPU it compiles the comparison)
    assert (
        got["first_evaluation"]["total"] > got["first_evaluation"]["replay"]
        and got["first_evaluation"]["compare"] > 0
    )
    # the judge's first call, where its kernels compile, is part of its replay
    assert 0 < got["first_evaluation"]["replay_first"] <= got["first_evaluation"]["replay"]
