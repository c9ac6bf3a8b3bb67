"""Host-side launch helpers of the template kernels; the renderer copies the ones a template imports
into its candidate."""

import torch


def num_sms(t: torch.Tensor) -> int:
    # The SM/CU count of the tensor's device; on the CPU (interpreter runs and ahead-of-time compiles,
    # where the grid does not matter) the H100's 132.
    if t.is_cuda:
        return torch.cuda.get_device_properties(t.device).multi_processor_count
    return 132


def k_splits(knob: int | str, tiles: int, k_steps: int, sms: int) -> int:
    # A number: that many K slices. "sms": the fewest slices (of at least one K step each) that give
    # every SM work in whole waves, to within 10%: 48 output tiles on 132 SMs take 5 (240 programs,
    # 91% of two waves; 4 slices leave 27% of the second wave idle).
    if knob != "sms":
        return int(knob)
    first = max(1, -(-sms // tiles))
    best, best_share = first, 0.0
    for splits in range(first, min(k_steps, 4 * first) + 1):
        share = tiles * splits / (-(-tiles * splits // sms) * sms)
        if share >= 0.9:
            return splits
        if share > best_share:
            best, best_share = splits, share
    return max(1, min(best, k_steps))


def launch_warps(knob: int | str, tile: int) -> int:
    # "auto": one warp per 512 elements of the tile, 1..16. A number: that many warps, raised (up to 16)
    # so no thread holds more than 256 elements: a whole-row block of a 128K-wide row on one warp
    # would take the compiler minutes to spill.
    if knob == "auto":
        return max(1, min(16, tile // 512))
    return max(int(knob), min(16, tile // (32 * 256)))


def rows_per_program(knob: int, block: int) -> int:
    # The knob, lowered so a [rows, block] register tile holds at most 16K elements (at least one row).
    return max(1, min(knob, 16384 // block))


def eviction_policies(knob: str) -> tuple[str, str]:
    # (policy of streamed loads, policy of reused loads): "stream" evicts the streamed data first and
    # keeps the reused (weights); "none" gives no hint.
    return ("evict_first", "evict_last") if knob == "stream" else ("", "")
