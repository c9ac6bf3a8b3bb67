"""Rich renderables and plain dicts for `ksearch targets list|show` and `ksearch env-info`."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ksearch.target.profile import PeakRates, TargetProfile
from ksearch.target.snapshot import EnvSnapshot

_PEAK_LABELS: dict[str, str] = {
    "fp64_vector": "fp64 (vector)",
    "fp64_matrix": "fp64 (matrix / tensor core)",
    "fp32_vector": "fp32 (vector)",
    "fp32_matrix": "fp32 (matrix)",
    "tf32": "tf32 / xf32",
    "fp16": "fp16",
    "bf16": "bf16",
    "fp8": "fp8",
    "fp6": "fp6",
    "fp4": "fp4",
    "int8": "int8 (TOP/s)",
}


def _fmt(value: float | int | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".strip()


def _hardware_rows(p: TargetProfile) -> list[tuple[str, str, str]]:
    regs = p.registers
    per_thread = _fmt(regs.max_per_thread)
    if regs.arch_vgprs_per_lane is not None and regs.acc_vgprs_per_lane is not None:
        per_thread += f" per lane ({regs.arch_vgprs_per_lane} VGPR + {regs.acc_vgprs_per_lane} AGPR)"
    unit = "CUs" if p.vendor == "amd" else "SMs"
    smem = "LDS" if p.vendor == "amd" else "shared memory"
    rows: list[tuple[str, str, str]] = [
        ("arch", p.arch, "arch"),
        ("triton target", f"{p.triton.backend} / {p.triton.arch}", "triton"),
        ("warp size", str(p.warp_size), "warp_size"),
        (unit, _fmt(p.sm_count), "sm_count"),
        ("clock", _fmt(p.clock_mhz, "MHz"), "clock_mhz"),
        (f"32-bit registers per {unit[:-1]}", _fmt(regs.per_sm), "registers.per_sm"),
        ("max registers per thread", per_thread, "registers.max_per_thread"),
        ("register allocation unit", _fmt(regs.allocation_unit), "registers.allocation_unit"),
        (f"{smem} per {unit[:-1]}", _fmt(p.shared_memory.per_sm_kib, "KiB"), "shared_memory.per_sm_kib"),
        (
            f"{smem} max per block",
            _fmt(p.shared_memory.max_per_block_kib, "KiB"),
            "shared_memory.max_per_block_kib",
        ),
        (
            f"{smem} reserved per block",
            _fmt(p.shared_memory.reserved_per_block_kib, "KiB"),
            "shared_memory.reserved_per_block_kib",
        ),
        ("L2 cache", _fmt(p.caches.l2_mib, "MiB"), "caches.l2_mib"),
    ]
    if p.residency.simds_per_cu is not None:
        rows.append(("SIMDs per CU", _fmt(p.residency.simds_per_cu), "residency.simds_per_cu"))
    if p.caches.last_level_mib is not None:
        rows.append(("last-level cache", _fmt(p.caches.last_level_mib, "MiB"), "caches.last_level_mib"))
    if p.tensor_memory_kib is not None:
        rows.append(("tensor memory per SM", _fmt(p.tensor_memory_kib, "KiB"), "tensor_memory_kib"))
    rows += [
        ("memory", f"{_fmt(p.memory.capacity_gib, 'GiB')} {p.memory.type}", "memory.capacity_gib"),
        ("memory bandwidth", _fmt(p.memory.bandwidth_tbs, "TB/s"), "memory.bandwidth_tbs"),
    ]
    return rows


def render_target(profile: TargetProfile) -> RenderableType:
    """A rich renderable of one profile: hardware, dense peaks with ridge points, expected
    instruction families, notes, each value with its source."""
    p = profile
    title = Text.assemble((p.name, "bold cyan"), "  ", (p.product, "bold"), f"  ({p.vendor})")

    hw = Table(title="Hardware", title_justify="left", expand=True)
    hw.add_column("field", style="bold", no_wrap=True)
    hw.add_column("value", no_wrap=True)
    hw.add_column("source", style="dim", overflow="fold")
    for label, value, key in _hardware_rows(p):
        hw.add_row(label, value, p.sources.get(key, ""))

    peaks = Table(title="Peak dense rates (no sparsity)", title_justify="left", expand=True)
    peaks.add_column("dtype", style="bold", no_wrap=True)
    peaks.add_column("TFLOP/s", justify="right", no_wrap=True)
    peaks.add_column("ridge FLOP/B", justify="right", no_wrap=True)
    peaks.add_column("source", style="dim", overflow="fold")
    for key in PeakRates.model_fields:
        value = getattr(p.peaks, key)
        if value is None:
            continue
        peaks.add_row(
            _PEAK_LABELS.get(key, key),
            _fmt(value),
            f"{value / p.memory.bandwidth_tbs:.0f}",
            p.sources.get(f"peak_tflops.{key}", ""),
        )

    instr = Table(title="Expected instruction families", title_justify="left", expand=True)
    instr.add_column("op", style="bold", no_wrap=True)
    instr.add_column("dtype", no_wrap=True)
    instr.add_column("families", overflow="fold")
    instr.add_column("note", style="dim", overflow="fold")
    for entry in p.expected_instructions:
        instr.add_row(entry.op_family, entry.dtype, "\n".join(entry.families), entry.note)

    parts: list[RenderableType] = [title, hw, peaks, instr]
    if p.notes:
        parts.append(Text("Notes", style="bold"))
        parts.extend(Text(f"  - {note}") for note in p.notes)
    if p.source_path is not None:
        parts.append(Text(f"profile file: {p.source_path}", style="dim"))
    return Group(*parts)


def describe_target(profile: TargetProfile) -> dict[str, Any]:
    """JSON-able dict of a profile (YAML field names) plus derived roofline ridge points."""
    data = profile.model_dump(mode="json", by_alias=True)
    ridge = {
        key: round(value / profile.memory.bandwidth_tbs, 1)
        for key, value in profile.peaks.model_dump().items()
        if value is not None
    }
    data["derived"] = {"ridge_point_flop_per_byte": ridge}
    data["source_file"] = str(profile.source_path) if profile.source_path else None
    return data


def render_target_list(profiles: list[TargetProfile]) -> RenderableType:
    """One-line-per-target summary table for `ksearch targets list`."""
    table = Table(
        title="Targets (dense peaks in TFLOP/s)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("arch", no_wrap=True)
    table.add_column("product", min_width=12, ratio=1)
    for col in ("SM/CU", "GiB", "TB/s", "bf16", "fp8", "fp4"):
        table.add_column(col, justify="right", no_wrap=True)
    for p in profiles:
        table.add_row(
            p.name,
            p.arch,
            p.product,
            _fmt(p.sm_count),
            _fmt(p.memory.capacity_gib),
            _fmt(p.memory.bandwidth_tbs),
            _fmt(p.peaks.bf16),
            _fmt(p.peaks.fp8),
            _fmt(p.peaks.fp4),
        )
    return table


def render_snapshot(snapshot: EnvSnapshot) -> RenderableType:
    """Rich renderable of an EnvSnapshot for `ksearch env-info`."""
    s = snapshot
    h = s.host
    host = Table(title="Host", title_justify="left", show_header=False)
    host.add_column("field", style="bold")
    host.add_column("value")
    host.add_row("host", h.hostname)
    host.add_row("os", f"{h.os} {h.kernel}" + (f" ({h.distribution})" if h.distribution else ""))
    host.add_row("cpu", f"{h.cpu_model or '?'} x {h.cpu_count or '?'} (usable {h.cpu_count_usable or '?'})")
    host.add_row("memory", _fmt(h.memory_gib, "GiB"))
    host.add_row("python", f"{s.python.version} ({s.python.executable})")
    host.add_row("ksearch", s.ksearch_version)

    pkgs = Table(title="Packages", title_justify="left")
    pkgs.add_column("package", style="bold")
    pkgs.add_column("version")
    pkgs.add_column("note", style="dim", overflow="fold")
    for info in s.packages.values():
        pkgs.add_row(info.name, info.version or "-", info.reason or (info.location or ""))
    if s.torch_cuda or s.torch_hip:
        pkgs.add_row("torch runtime", f"cuda {s.torch_cuda}" if s.torch_cuda else f"hip {s.torch_hip}", "")

    tools = Table(title="Toolchain", title_justify="left")
    tools.add_column("tool", style="bold")
    tools.add_column("version")
    tools.add_column("path / reason", style="dim", overflow="fold")
    for tool in s.toolchain.values():
        tools.add_row(
            tool.name, tool.version or "-", tool.path if tool.version else (tool.reason or tool.path or "")
        )

    parts: list[RenderableType] = [host, pkgs, tools]
    if s.gpus:
        gpus = Table(title=f"GPUs ({s.gpu_query})", title_justify="left")
        for col in ("idx", "name", "driver", "memory MiB", "SM MHz (max)", "mem MHz (max)"):
            gpus.add_column(col)
        for g in s.gpus:
            gpus.add_row(
                str(g.index),
                g.name,
                g.driver_version or "-",
                _fmt(g.memory_total_mib),
                f"{_fmt(g.sm_clock_mhz)} ({_fmt(g.sm_clock_max_mhz)})",
                f"{_fmt(g.mem_clock_mhz)} ({_fmt(g.mem_clock_max_mhz)})",
            )
        parts.append(gpus)
    else:
        parts.append(Text(f"GPUs: none ({s.gpu_query})", style="yellow"))
    d = s.local_device
    if d is None:
        parts.append(Text("local device: none (performance will be unmeasured:no_device)", style="yellow"))
    else:
        match = f"profile {d.profile}" if d.profile else "no matching profile"
        line = f"local device: {d.name} ({d.arch}, {d.sm_count} SMs/CUs, {d.memory_gib} GiB) -> {match}"
        parts.append(Text(line, style="green" if d.profile else "yellow"))
        parts.extend(Text(f"  - {note}", style="dim") for note in d.profile_notes)
    return Group(*parts)
