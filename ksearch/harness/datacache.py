"""The evaluator's cache of drawn inputs and reference outputs, kept for the next candidates.

Drawing is the slow part (a seed's generator runs on the CPU so that a seed means the same tensor on
every device: seconds for a 16384 x 16384 input), and one candidate's evaluation draws the same
keys as the last one's. A plain LRU cache fails exactly there: a suite a little larger than the cap
evicts, in order, each entry just before it is needed again, so nothing ever hits. Here each
evaluation names every key it needs; room for a new entry is made from entries it does not need
(least recently used first), and when only needed ones are left the new entry is not kept. A suite
larger than the cap then misses only the part that does not fit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable

import torch

Entry = tuple[list[torch.Tensor], dict[str, torch.Tensor]]  # (inputs, reference outputs by name)


def entry_bytes(entry: Entry) -> int:
    inputs, refs = entry
    return sum(t.numel() * t.element_size() for t in [*inputs, *refs.values()])


class InputCache:
    def __init__(self, cap_bytes: int):
        self.cap_bytes = cap_bytes
        self.held_bytes = 0
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()  # least recently used first
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable, make: Callable[[], Entry], needed: Collection[Hashable]) -> Entry:
        """The entry of `key`, made by `make` on a miss; `needed`: every key of this evaluation."""
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return hit
        self.misses += 1
        entry = make()
        size = entry_bytes(entry)
        spare = [k for k in self._entries if k not in needed]  # least recently used first
        while self.held_bytes + size > self.cap_bytes and spare:
            self.held_bytes -= entry_bytes(self._entries.pop(spare.pop(0)))
        if self.held_bytes + size <= self.cap_bytes:
            self._entries[key] = entry
            self.held_bytes += size
        return entry
