"""Input generation: one function per generator kind, deterministic per (seed, input name).

Values are drawn on the CPU with a `torch.Generator` and then moved to the device, so the CPU
interpreter and every GPU see bit-identical inputs for a given seed. Floating values are drawn in
float32, given the row features their generator asks for (row and column offsets, massive values,
zero and constant rows), clamped to the target dtype's finite range (a heavy tail must not become
inf in float16) and cast.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import math
import os
from collections.abc import Mapping

import torch
from pydantic import BaseModel

from ksearch.errors import TaskError
from ksearch.task.formula import parse_formula
from ksearch.task.spec import (
    BernoulliGen,
    ChannelOutliersGen,
    ConstantGen,
    HotColumnsGen,
    NormalGen,
    OutliersGen,
    RandintGen,
    RowFeatures,
    StudentTGen,
    UniformGen,
    ZipfGen,
)


def torch_dtype(name: str) -> torch.dtype:
    """torch dtype for a task dtype name (the names are torch's own)."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise TaskError(f"dtype '{name}' is not a torch dtype; use a name such as float16 or int32")
    return dtype


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def derive_seed(seed: int, input_name: str) -> int:
    """A stable 63-bit seed per (seed, input): inputs differ from each other yet depend only on the seed.

    The distribution name is left out on purpose: an input a distribution does not override is the
    same tensor under every distribution, so a failure can be attributed to the overridden input.
    """
    digest = hashlib.blake2b(f"{seed}:{input_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _bound(value: int | str, axes: Mapping[str, int], what: str) -> int:
    if isinstance(value, int):
        return value
    result = parse_formula(value, what).evaluate(axes, what)
    return int(result)


# Large draws are filled in fixed-size chunks, each from its own generator seeded off `gen`, on
# several threads: a CPU generator fills one tensor on one core, and a 1 GiB heavy-tailed input (four
# normal draws) took 15 s that way. The chunking depends on the size alone, never on the thread
# count, so a seed gives the same values on every machine.
CHUNK = 1 << 22  # elements a sub-generator fills
THREADS = max(1, min(8, os.cpu_count() or 1))


def _normal(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    n = math.prod(shape)
    if n < 2 * CHUNK:
        return torch.randn(shape, generator=gen, dtype=torch.float32)
    out = torch.empty(n, dtype=torch.float32)
    chunks = -(-n // CHUNK)
    seeds = torch.randint(0, 1 << 62, (chunks,), generator=gen, dtype=torch.int64).tolist()

    def fill(i: int) -> None:
        sub = torch.Generator(device="cpu").manual_seed(seeds[i])
        out[i * CHUNK : (i + 1) * CHUNK].normal_(generator=sub)

    with concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="ksearch-draw") as pool:
        list(pool.map(fill, range(chunks)))
    return out.view(shape)


def _student_t(spec: StudentTGen, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    # t = Z / sqrt(chi2_df / df); chi2_df as a sum of df squared normals keeps every draw on `gen`.
    z = _normal(shape, gen)
    chi2 = torch.zeros(shape, dtype=torch.float32)
    for _ in range(spec.df):
        chi2.add_(_normal(shape, gen).square_())
    return z.mul_(torch.rsqrt(chi2.div_(spec.df).clamp_min_(1e-30))).mul_(spec.scale)


def _outliers(spec: OutliersGen, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    x = _normal(shape, gen).mul_(spec.std)
    flat = x.view(-1)
    count = max(1, round(spec.fraction * flat.numel()))
    # unique positions: assigning to a repeated index keeps an arbitrary one of its values (CPU
    # index_put is parallel), which would make the same seed give different inputs from run to run
    where = torch.unique(torch.randint(0, flat.numel(), (count,), generator=gen))
    count = where.numel()
    sign = torch.randint(0, 2, (count,), generator=gen).float().mul_(2).sub_(1)
    size = torch.rand(count, generator=gen).add_(0.5).mul_(spec.magnitude)
    flat[where] = sign * size
    return x


def _channel_outliers(spec: ChannelOutliersGen, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    x = _normal(shape, gen).mul_(spec.std)
    cols = torch.randperm(shape[-1], generator=gen)[: min(spec.channels, shape[-1])]
    x[..., cols] *= spec.magnitude
    return x


def _hot_columns(spec: HotColumnsGen, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    x = _normal(shape, gen).mul_(spec.std)
    rank = torch.randperm(shape[-1], generator=gen).float().add_(1)
    return x.add_(rank.pow_(-spec.exponent).mul_(spec.strength))


def _zipf(
    spec: ZipfGen, shape: tuple[int, ...], gen: torch.Generator, axes: Mapping[str, int]
) -> torch.Tensor:
    high = _bound(spec.high, axes, "zipf high")
    if high < 1:
        raise TaskError(f"zipf generator: high evaluates to {high}; it must be >= 1")
    weights = torch.arange(1, high + 1, dtype=torch.float64).pow_(-spec.exponent)
    numel = 1
    for d in shape:
        numel *= d
    draws = torch.multinomial(weights, numel, replacement=True, generator=gen)
    if spec.permute:
        draws = torch.randperm(high, generator=gen)[draws]
    return draws.view(shape)


def _randint(
    spec: RandintGen, shape: tuple[int, ...], gen: torch.Generator, axes: Mapping[str, int]
) -> torch.Tensor:
    low = _bound(spec.low, axes, "randint low")
    high = _bound(spec.high, axes, "randint high")
    if high <= low:
        raise TaskError(f"randint generator: low={low} high={high}; it needs low < high")
    return torch.randint(low, high, shape, generator=gen)


def _shape_seed(shape: tuple[int, ...]) -> int:
    digest = hashlib.blake2b(f"rows:{tuple(shape)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _signs(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=gen).float().mul_(2).sub_(1)


def _signed_offsets(count: int, size: float, gen: torch.Generator) -> torch.Tensor:
    """+-U(0.5, 1) * size: every offset at least half the size, so no row or column sits near 0."""
    return torch.rand(count, generator=gen).mul_(0.5).add_(0.5).mul_(size).mul_(_signs((count,), gen))


def _row_features(spec: RowFeatures, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Apply the generator's row features (see `RowFeatures` in spec.py) to float32 draws `x`, in place.
    With none set, nothing is drawn: the generator's values are what they were without them."""
    if not (spec.row_offset or spec.column_offset or spec.massive or spec.zero_rows or spec.constant_rows):
        return x
    cols = x.shape[-1] if x.dim() else 1
    rows = x.numel() // cols
    x2 = x.view(rows, cols)
    if spec.row_offset:
        x2.add_(_signed_offsets(rows, spec.row_offset, gen).unsqueeze(1))
    if spec.column_offset:
        x2.add_(_signed_offsets(cols, spec.column_offset, gen))
    # Which rows are special depends on the shape alone, so inputs of one shape agree on them.
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(_shape_seed(tuple(x.shape))))
    n_zero = min(spec.zero_rows, rows - 1)
    n_const = min(spec.constant_rows, rows - 1 - n_zero)
    zero, const = order[:n_zero], order[n_zero : n_zero + n_const]
    if spec.massive is not None:
        low, high = spec.massive
        where = order[n_zero + n_const :][: spec.massive_rows]
        chans = torch.randperm(cols, generator=gen)[: spec.massive_channels]
        size = (where.numel(), chans.numel())
        magnitude = (
            torch.rand(size, generator=gen, dtype=torch.float64)
            .mul_(math.log(high / low))
            .add_(math.log(low))
        )
        x2[where.unsqueeze(1), chans.unsqueeze(0)] = magnitude.exp_().float().mul_(_signs(size, gen))
    if n_const:
        x2[const] = x2[const, :1].expand(n_const, cols)
    if n_zero:
        x2[zero] = 0.0
    return x


def sample(
    spec: BaseModel, shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator, axes: Mapping[str, int]
) -> torch.Tensor:
    """Draw one CPU tensor of `shape` and `dtype` from generator `spec`."""
    match spec:
        case NormalGen():
            x = _normal(shape, gen).mul_(spec.std).add_(spec.mean)
            if spec.clip is not None:
                x.clamp_(-spec.clip, spec.clip)
        case UniformGen():
            x = (
                torch.rand(shape, generator=gen, dtype=torch.float32)
                .mul_(spec.high - spec.low)
                .add_(spec.low)
            )
        case StudentTGen():
            x = _student_t(spec, shape, gen)
            if spec.clip is not None:
                x.clamp_(-spec.clip, spec.clip)
        case OutliersGen():
            x = _outliers(spec, shape, gen)
        case ChannelOutliersGen():
            x = _channel_outliers(spec, shape, gen)
        case HotColumnsGen():
            x = _hot_columns(spec, shape, gen)
        case ZipfGen():
            return _zipf(spec, shape, gen, axes).to(dtype)
        case RandintGen():
            return _randint(spec, shape, gen, axes).to(dtype)
        case BernoulliGen():
            return (torch.rand(shape, generator=gen) < spec.p).to(dtype)
        case ConstantGen():
            return torch.full(shape, spec.value, dtype=torch.float32).to(dtype)
        case _:
            raise TaskError(
                f"no sampler for generator {type(spec).__name__}; this is a ksearch bug, report it"
            )
    if isinstance(spec, RowFeatures):
        x = _row_features(spec, x, gen)
    if dtype.is_floating_point:
        # float16 tops out at 65504: clamp so a heavy tail stays finite rather than becoming inf.
        limit = float(torch.finfo(dtype).max)
        x.clamp_(-limit, limit)
    return x.to(dtype)


def make_distinct_last_dim(x: torch.Tensor) -> torch.Tensor:
    """Nudge equal values within each last-dim row apart by one ulp, keeping their order otherwise.

    Ties make top-k and argmax ambiguous; after this every row has pairwise distinct values, so the
    reference's choice is the only right one.
    """
    if x.numel() == 0 or x.shape[-1] < 2:
        return x
    values, order = torch.sort(x, dim=-1)
    # Each pass lifts every element that is not above its left neighbour to the next float up;
    # a run of k equal values needs k - 1 passes, and real ties are rare and short.
    while True:
        prev, cur = values[..., :-1], values[..., 1:]
        bad = cur <= prev
        if not bool(bad.any()):
            break
        cur[bad] = torch.nextafter(prev[bad], torch.full_like(prev[bad], float("inf")))
    return torch.empty_like(x).scatter_(-1, order, values)
