"""Target profiles, device detection and the environment snapshot (network-free, fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ksearch.errors import KsearchError, TargetError
from ksearch.target import (
    EnvSnapshot,
    PeakRates,
    TargetProfile,
    describe_target,
    detect_local_device,
    environment_snapshot,
    family_matches,
    list_targets,
    load_target,
    match_profile,
    normalize_dtype,
    render_target,
)
from ksearch.target.snapshot import parse_nvidia_smi_csv, parse_tool_version, probe_tool

ALL = ["b200", "h100", "h200", "mi300x", "mi355x"]


@pytest.fixture(scope="module")
def profiles() -> dict[str, TargetProfile]:
    return {name: load_target(name) for name in ALL}


def _h100_data() -> dict:
    path = load_target("h100").source_path
    assert path is not None
    return yaml.safe_load(path.read_text())


# ---- profiles ------------------------------------------------------------------------------


def test_all_five_profiles_listed_and_load(profiles: dict[str, TargetProfile]) -> None:
    assert set(ALL) <= set(list_targets())
    for name, p in profiles.items():
        assert p.name == name
        assert p.source_path is not None and p.source_path.name == f"{name}.yaml"
        assert p.product and p.arch and p.sm_count > 0 and p.clock_mhz > 0
        assert p.memory.capacity_gib > 0 and p.memory.bandwidth_tbs > 0
        assert p.expected_instructions, name


def test_arch_and_triton_targets(profiles: dict[str, TargetProfile]) -> None:
    expected = {
        "b200": ("sm_100a", "cuda", 100),
        "h100": ("sm_90a", "cuda", 90),
        "h200": ("sm_90a", "cuda", 90),
        "mi355x": ("gfx950", "hip", "gfx950"),
        "mi300x": ("gfx942", "hip", "gfx942"),
    }
    for name, (arch, backend, triton_arch) in expected.items():
        p = profiles[name]
        assert (p.arch, p.triton.backend, p.triton.arch) == (arch, backend, triton_arch)
        target = p.triton_gpu_target()
        assert (target.backend, target.arch, target.warp_size) == (backend, triton_arch, p.warp_size)


def test_every_peak_and_bandwidth_has_a_source(profiles: dict[str, TargetProfile]) -> None:
    for name, p in profiles.items():
        for key, value in p.peaks.model_dump().items():
            if value is not None:
                assert p.sources.get(f"peak_tflops.{key}", "").strip(), f"{name}: peak_tflops.{key}"
        assert p.sources.get("memory.bandwidth_tbs", "").strip(), name
        assert p.sources.get("memory.capacity_gib", "").strip(), name
        # the YAML itself carries a comment next to each peak value
        lines = p.source_path.read_text().splitlines()  # type: ignore[union-attr]
        for key in PeakRates.model_fields:
            line = next(ln for ln in lines if ln.strip().startswith(f"{key}:"))
            if getattr(p.peaks, key) is not None:
                assert "#" in line, f"{name}: no source comment on {key}"


def test_sanity_relations(profiles: dict[str, TargetProfile]) -> None:
    for name, p in profiles.items():
        if p.peaks.fp8 is not None:
            assert p.peaks.fp8 == pytest.approx(2 * p.peaks.bf16, rel=1e-3), name
        assert p.peak_tflops("bf16") > p.peak_tflops("fp32"), name
        assert p.peaks.fp16 == p.peaks.bf16, name
        assert p.warp_size == (32 if p.vendor == "nvidia" else 64), name
    assert profiles["h200"].memory.bandwidth_tbs > profiles["h100"].memory.bandwidth_tbs
    assert profiles["h200"].memory.capacity_gib > profiles["h100"].memory.capacity_gib
    assert profiles["b200"].peak_tflops("bf16") > profiles["h100"].peak_tflops("bf16")
    assert profiles["mi355x"].peak_tflops("bf16") > profiles["mi300x"].peak_tflops("bf16")
    assert profiles["b200"].tensor_memory_kib == 256
    assert profiles["mi355x"].shared_memory.per_sm_kib == 160
    assert profiles["mi300x"].shared_memory.per_sm_kib == 64
    for name in ("mi300x", "mi355x"):
        regs = profiles[name].registers
        assert regs.arch_vgprs_per_lane + regs.acc_vgprs_per_lane == regs.max_per_thread == 512  # type: ignore[operator]
        assert profiles[name].caches.last_level_mib == 256


def test_peak_tflops_dtype_spellings(profiles: dict[str, TargetProfile]) -> None:
    h100, b200, mi300x, mi355x = (profiles[n] for n in ("h100", "b200", "mi300x", "mi355x"))
    assert h100.peak_tflops("torch.bfloat16") == h100.peak_tflops("bf16") == 989.4
    assert h100.peak_tflops("float8_e4m3fn") == 1978.9
    assert h100.peak_tflops("fp64") == 67  # faster of vector (34) and tensor core (67)
    assert h100.peak_tflops("fp64_vector") == 34
    assert b200.peak_tflops("nvfp4") == b200.peak_tflops("mxfp4") == 9000
    assert mi300x.peak_tflops("xf32") == 653.7
    assert mi355x.peak_tflops("mxfp4") == 10000
    with pytest.raises(TargetError, match="no fp4 peak rate"):
        h100.peak_tflops("fp4")
    assert not mi355x.has_peak("tf32")
    with pytest.raises(TargetError, match="unknown dtype"):
        h100.peak_tflops("float7")
    assert normalize_dtype("torch.float16") == "fp16"


def test_expected_families(profiles: dict[str, TargetProfile]) -> None:
    b200_gemm = profiles["b200"].expected_families("gemm", "bf16")
    assert any(f.startswith("tcgen05.mma") for f in b200_gemm)
    assert any("cp.async.bulk.tensor" in f for f in b200_gemm)
    assert any("kind::f8f6f4" in f for f in profiles["b200"].expected_families("gemm", "fp8"))
    assert any("mxf4nvf4" in f for f in profiles["b200"].expected_families("gemm", "nvfp4"))
    for name in ("h100", "h200"):
        assert any(f.startswith("wgmma") for f in profiles[name].expected_families("gemm", "bfloat16"))
    assert any(f.startswith("v_mfma_scale") for f in profiles["mi355x"].expected_families("gemm", "mxfp4"))
    assert profiles["mi355x"].expected_families("gemm", "bf16") == ["v_mfma_f32_*_bf16"]
    assert profiles["mi300x"].expected_families("gemm", "bf16") == ["v_mfma_f32_*_bf16"]
    # memory-bound ops: vectorized loads for any dtype, no tensor-core family
    for name, p in profiles.items():
        fams = p.expected_families("elementwise", "fp32")
        assert fams and not any("mma" in f or "mfma" in f for f in fams), name
    assert profiles["h100"].expected_families("gemm", "fp4") == []  # no expectation stated


def test_family_patterns_match_real_mnemonics(profiles: dict[str, TargetProfile]) -> None:
    def hits(p: TargetProfile, op: str, dtype: str, mnemonic: str) -> bool:
        return any(family_matches(f, mnemonic) for f in p.expected_families(op, dtype))

    h100, b200, mi355x, mi300x = (profiles[n] for n in ("h100", "b200", "mi355x", "mi300x"))
    assert hits(h100, "gemm", "bf16", "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16")
    assert hits(
        h100, "gemm", "bf16", "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
    )
    assert not hits(h100, "gemm", "fp16", "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16")
    assert hits(b200, "gemm", "bf16", "tcgen05.mma.cta_group::1.kind::f16")
    assert hits(b200, "gemm", "nvfp4", "tcgen05.mma.cta_group::1.kind::mxf4nvf4.block_scale.scale_vec::4X")
    assert hits(b200, "elementwise", "bf16", "ld.global.v4.b32")
    assert not hits(b200, "elementwise", "bf16", "ld.global.b32")
    assert hits(mi355x, "gemm", "bf16", "v_mfma_f32_32x32x16_bf16")
    assert not hits(mi355x, "gemm", "fp16", "v_mfma_f32_32x32x16_bf16")
    assert hits(mi355x, "gemm", "mxfp4", "v_mfma_scale_f32_16x16x128_f8f6f4")
    assert hits(mi300x, "norm", "bf16", "global_load_dwordx4")


def test_unknown_target_lists_known_ones() -> None:
    with pytest.raises(TargetError) as info:
        load_target("b300")
    message = str(info.value)
    assert "unknown target 'b300'" in message
    for name in ALL:
        assert name in message
    assert "\n" not in message
    assert isinstance(info.value, KsearchError)


def test_name_lookup_is_case_insensitive() -> None:
    assert load_target("MI355X").name == "mi355x"


def test_missing_field_names_file_and_field(tmp_path: Path) -> None:
    data = _h100_data()
    del data["memory"]["bandwidth_tbs"]
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TargetError) as info:
        load_target(path)
    message = str(info.value)
    assert str(path) in message and "memory.bandwidth_tbs" in message and "missing" in message
    assert "\n" not in message


def test_missing_top_level_field_and_unknown_field(tmp_path: Path) -> None:
    data = _h100_data()
    del data["warp_size"]
    data["sm_cout"] = 132
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TargetError) as info:
        load_target(str(path))
    assert "field 'warp_size' is missing; add it" in str(info.value)
    assert "unknown field 'sm_cout'" in str(info.value)


def test_peak_without_source_is_rejected(tmp_path: Path) -> None:
    data = _h100_data()
    del data["sources"]["peak_tflops.bf16"]
    path = tmp_path / "nosource.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TargetError, match="peak_tflops.bf16"):
        load_target(path)


def test_vendor_inconsistency_and_bad_yaml(tmp_path: Path) -> None:
    data = _h100_data()
    data["warp_size"] = 64
    path = tmp_path / "wrongwarp.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TargetError, match="warp_size 32"):
        load_target(path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TargetError, match="not valid YAML"):
        load_target(bad)
    with pytest.raises(TargetError, match="does not exist"):
        load_target(tmp_path / "absent.yaml")


def test_configs_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = tmp_path / "targets"
    targets.mkdir()
    data = _h100_data()
    data["name"] = "myh100"
    (targets / "myh100.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("KSEARCH_CONFIGS", str(tmp_path))
    assert list_targets() == ["myh100"]
    assert load_target("myh100").sm_count == 132
    with pytest.raises(TargetError, match="known targets: myh100"):
        load_target("h100")


def test_describe_and_render(profiles: dict[str, TargetProfile]) -> None:
    from rich.console import Console

    d = describe_target(profiles["mi355x"])
    json.dumps(d)
    assert d["peak_tflops"]["fp4"] == 10000
    assert d["derived"]["ridge_point_flop_per_byte"]["bf16"] == pytest.approx(2500 / 8.0, rel=1e-3)
    console = Console(width=200, record=True)
    console.print(render_target(profiles["b200"]))
    text = console.export_text()
    assert "tcgen05.mma" in text and "HGX B200" in text and "2250" in text


# ---- detection -----------------------------------------------------------------------------


def test_match_profile_rules() -> None:
    def m(**kw: object) -> str | None:
        return match_profile(**kw)[0]  # type: ignore[arg-type]

    assert (
        m(name="NVIDIA H100 80GB HBM3", vendor="nvidia", arch="sm_90", memory_gib=79.2, sm_count=132)
        == "h100"
    )
    assert m(name="NVIDIA H200", vendor="nvidia", arch="sm_90", memory_gib=139.8, sm_count=132) == "h200"
    assert (
        m(name="NVIDIA Graphics Device", vendor="nvidia", arch="sm_90", memory_gib=139.8, sm_count=132)
        == "h200"
    )
    assert m(name="NVIDIA B200", vendor="nvidia", arch="sm_100", memory_gib=178.4, sm_count=148) == "b200"
    assert (
        m(name="NVIDIA A100-SXM4-80GB", vendor="nvidia", arch="sm_80", memory_gib=79.2, sm_count=108) is None
    )
    assert (
        m(name="AMD Instinct MI300X", vendor="amd", arch="gfx942", memory_gib=191.5, sm_count=304) == "mi300x"
    )
    assert (
        m(name="AMD Instinct MI355X", vendor="amd", arch="gfx950", memory_gib=287.5, sm_count=256) == "mi355x"
    )
    assert m(name="AMD Instinct MI325X", vendor="amd", arch="gfx942", memory_gib=255.5, sm_count=304) is None
    _, notes = match_profile(
        name="NVIDIA H100 PCIe", vendor="nvidia", arch="sm_90", memory_gib=79.2, sm_count=114
    )
    assert any("114" in n for n in notes)


def test_match_profile_reads_the_sm_count_from_the_profile(tmp_path: Path, monkeypatch) -> None:
    targets = tmp_path / "targets"
    targets.mkdir()
    data = _h100_data()
    data["sm_count"] = 114  # an H100 PCIe profile: the device's 114 SMs are then no surprise
    (targets / "h100.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("KSEARCH_CONFIGS", str(tmp_path))
    kw = dict(name="NVIDIA H100 PCIe", vendor="nvidia", arch="sm_90", memory_gib=79.2)
    assert not any("SMs/CUs" in n for n in match_profile(**kw, sm_count=114)[1])  # type: ignore[arg-type]
    _, notes = match_profile(**kw, sm_count=132)  # type: ignore[arg-type]
    assert any("reports 132 SMs/CUs but the h100 profile has 114" in n for n in notes)


def test_occupancy_reads_the_allocation_facts_from_the_profile(profiles: dict[str, TargetProfile]) -> None:
    from ksearch.audit import occupancy
    from ksearch.compile.result import KernelInfo

    h100 = profiles["h100"]
    kernel = KernelInfo(name="k", registers=40, threads_per_block=256, smem_bytes=0)
    coarser = h100.model_copy(
        update={"registers": h100.registers.model_copy(update={"allocation_unit": 2048})}
    )
    # 40 registers x 32 lanes = 1280 per warp, granted as 1280 in units of 256 and 2048 in units of
    # 2048; 65536 registers then hold 6 or 4 blocks of 8 warps, of 64 warps an SM can hold
    assert occupancy(kernel, h100) == 6 * 8 / 64
    assert occupancy(kernel, coarser) == 4 * 8 / 64


def test_detect_local_device_none_without_gpu() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible; the no-GPU path is not exercised here")
    assert detect_local_device() is None


def test_environment_snapshot_cpu_safe() -> None:
    import torch
    import triton

    snap = environment_snapshot()
    assert isinstance(snap, EnvSnapshot)
    round_trip = EnvSnapshot.model_validate_json(snap.model_dump_json())
    assert round_trip == snap
    json.loads(snap.model_dump_json())
    assert snap.package_version("torch") == torch.__version__
    assert snap.package_version("triton") == triton.__version__
    import ksearch

    assert snap.ksearch_version == ksearch.__version__
    assert snap.python.version.count(".") == 2
    assert snap.host.cpu_count and snap.host.cpu_count >= 1
    assert {"nvcc", "ptxas", "triton-ptxas", "clang++-22", "clang", "hipcc"} <= set(snap.toolchain)
    for tool in snap.toolchain.values():
        assert tool.version is not None or tool.reason, tool.name
    # Triton bundles an NVIDIA ptxas; the snapshot names its path
    ptxas = snap.toolchain["triton-ptxas"]
    if ptxas.version is not None:
        assert ptxas.path and ptxas.path.endswith("ptxas")
    tilelang = snap.packages["tilelang"]
    assert tilelang.version is not None or tilelang.reason == "not installed"
    if not torch.cuda.is_available():
        assert snap.local_device is None
        assert snap.gpu_query


def test_snapshot_without_tool_probes_is_fast_and_complete() -> None:
    snap = environment_snapshot(probe_tools=False)
    assert all(t.version is None and t.reason for t in snap.toolchain.values())


def test_probe_tool_missing_and_failing(tmp_path: Path) -> None:
    missing = probe_tool("hipcc", None, reason_missing="no ROCm")
    assert missing.version is None and missing.reason == "no ROCm"
    not_exec = tmp_path / "tool"
    not_exec.write_text("#!/bin/sh\nexit 3\n")
    failing = probe_tool("tool", str(not_exec), reason_missing="-")
    assert failing.version is None and failing.reason
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    timed_out = probe_tool("slow", str(slow), reason_missing="-", timeout_s=0.2)
    assert timed_out.version is None and "timed out" in (timed_out.reason or "")


def test_parsers() -> None:
    assert parse_tool_version("Cuda compilation tools, release 13.0, V13.0.88\n")[0] == "13.0.88"
    assert parse_tool_version("Ubuntu clang version 22.1.0 (++20260101)\nTarget: x86_64")[0] == "22.1.0"
    assert (
        parse_tool_version("HIP version: 6.4.43482-0f2d60242\nAMD clang version 19.0.0git")[0]
        == "6.4.43482-0f2d60242"
    )
    rows = parse_nvidia_smi_csv(
        "0, NVIDIA H100 80GB HBM3, GPU-74c8, 580.159.04, 81559, 1980, 2619, 1980, 2619, 00000000:00:06.0\n"
        "1, NVIDIA H100 80GB HBM3, GPU-aaaa, 580.159.04, 81559, [N/A], [N/A], 1980, 2619, 00000000:00:07.0\n"
    )
    assert [g.index for g in rows] == [0, 1]
    assert rows[0].sm_clock_max_mhz == 1980 and rows[0].driver_version == "580.159.04"
    assert rows[1].sm_clock_mhz is None


# ---- on a GPU ------------------------------------------------------------------------------


@pytest.mark.gpu
def test_local_device_detected_and_matched() -> None:
    import torch

    device = detect_local_device()
    assert device is not None
    props = torch.cuda.get_device_properties(0)
    assert device.name == props.name
    assert device.sm_count == props.multi_processor_count
    assert device.vendor == ("amd" if torch.version.hip else "nvidia")
    if device.profile is None:
        pytest.skip(f"{device.name} ({device.arch}) has no profile: {device.profile_notes}")
    profile = load_target(device.profile)
    assert profile.sm_count == device.sm_count
    assert profile.warp_size == (device.warp_size or profile.warp_size)
    assert device.arch == profile.arch.rstrip("a").split(":")[0]
    assert abs(profile.memory.capacity_gib - device.memory_gib) / profile.memory.capacity_gib < 0.05
    if device.l2_cache_mib is not None:
        assert device.l2_cache_mib == pytest.approx(profile.caches.l2_mib, rel=0.05)
    snap = environment_snapshot()
    assert snap.gpus and snap.local_device == device
    assert snap.gpus[0].name == device.name
    if snap.gpus[0].sm_clock_max_mhz:
        assert snap.gpus[0].sm_clock_max_mhz == pytest.approx(profile.clock_mhz, rel=0.05)
