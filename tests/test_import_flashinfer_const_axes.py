"""FlashInfer-Bench definitions whose const axes alone pass the CPU element budget (a GEMM with
N = K = 4096 and a var M): CPU workloads keep the const dims as they are and put the var axes at a
few; a scalar written at two precisions is one value; a const part no CPU can hold is refused, said why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ksearch.errors import TaskError
from ksearch.task import load_task
from ksearch.task.importers import import_task
from ksearch.task.importers.common import CPU_CONST_ELEMENTS, CPU_ELEMENTS, cpu_sized, cpu_suite

SCALE32, SCALE64 = 0.0883883461356163, 0.08838834764831843  # 1/sqrt(128) written in float32 and in float64


def _gemm(folder: Path, n: int, k: int, ms: list[int], alphas: list[float] | None = None) -> Path:
    """definitions/gemm/<name>.json and workloads/gemm/<name>.jsonl, as a FlashInfer Trace dataset lays them out."""
    name = f"gemm_n{n}_k{k}"
    inputs = {"A": {"shape": ["M", "K"], "dtype": "float32"}, "B": {"shape": ["N", "K"], "dtype": "float32"}}
    reference = "import torch\n\ndef run(A, B):\n    return torch.matmul(A, B.T)\n"
    if alphas is not None:
        inputs["alpha"] = {"shape": None, "dtype": "float32"}
        reference = "import torch\n\ndef run(A, B, alpha):\n    return alpha * torch.matmul(A, B.T)\n"
    definition = {
        "name": name,
        "op_type": "gemm",
        "tags": ["model:fixture"],
        "axes": {
            "M": {"type": "var"},
            "N": {"type": "const", "value": n},
            "K": {"type": "const", "value": k},
        },
        "inputs": inputs,
        "outputs": {"C": {"shape": ["M", "N"], "dtype": "float32"}},
        "reference": reference,
    }
    (folder / "definitions" / "gemm").mkdir(parents=True, exist_ok=True)
    (folder / "workloads" / "gemm").mkdir(parents=True, exist_ok=True)
    path = folder / "definitions" / "gemm" / f"{name}.json"
    path.write_text(json.dumps(definition))
    rows = []
    for i, m in enumerate(ms):
        wl_inputs: dict = {"A": {"type": "random"}, "B": {"type": "random"}}
        if alphas is not None:
            wl_inputs["alpha"] = {"type": "scalar", "value": alphas[i % len(alphas)]}
        rows.append(
            {"definition": name, "workload": {"uuid": f"u-{m}", "axes": {"M": m}, "inputs": wl_inputs}}
        )
    (folder / "workloads" / "gemm" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_gemm_with_const_n_k_4096_imports_with_cpu_workloads_at_full_n_and_k(tmp_path):
    definition = _gemm(tmp_path / "data", 4096, 4096, [256, 1000, 4096])
    # the workloads are found where the dataset lays them out
    imported = import_task(definition, fmt="flashinfer", out=tmp_path / "tasks")
    task = load_task(imported.directory)
    assert imported.flags == []
    assert task.spec.const_axes == {"N": 4096, "K": 4096} and task.spec.var_axes == ["M"]
    real = [w for w in task.spec.workloads if not w.name.startswith("cpu_")]
    assert [(w.axes["M"], w.cpu) for w in real] == [(256, False), (1000, False), (4096, False)]
    cpu = task.workloads(cpu_only=True)
    assert cpu and all(w.axes["M"] <= 8 for w in cpu) and any(w.axes["M"] % 2 for w in cpu)
    assert any("const dims as they are (N=4096, K=4096)" in line for line in imported.inferred)
    smallest = min(cpu, key=lambda w: w.axes["M"])
    inputs = task.make_inputs(smallest.name)
    assert inputs["A"].shape == (smallest.axes["M"], 4096) and inputs["B"].shape == (4096, 4096)
    out = task.run_reference(inputs)["C"]
    assert out.shape == (smallest.axes["M"], 4096)
    assert torch.allclose(out, inputs["A"] @ inputs["B"].T, atol=1e-3, rtol=1e-4)
    assert task.flops(smallest.name) == 2 * smallest.axes["M"] * 4096 * 4096


def test_the_budget_bounds_what_can_shrink_and_small_problems_keep_the_old_rule():
    spec = {
        "name": "g",
        "axes": {
            "M": {"kind": "var"},
            "N": {"kind": "const", "value": 4096},
            "K": {"kind": "const", "value": 4096},
        },
        "inputs": {"A": {"shape": ["M", "K"]}, "B": {"shape": ["N", "K"]}},
        "outputs": {"C": {"shape": ["M", "N"]}},
    }
    assert cpu_sized(spec, {"M": 1}) and cpu_sized(spec, {"M": 8}) and not cpu_sized(spec, {"M": 9})
    small = {
        **spec,
        "axes": {**spec["axes"], "N": {"kind": "const", "value": 32}, "K": {"kind": "const", "value": 32}},
    }
    assert cpu_sized(small, {"M": 70}) and not cpu_sized(small, {"M": 80})  # 80*64 + 1024 > CPU_ELEMENTS
    workloads, notes = cpu_suite(small, [{"name": "M4096", "axes": {"M": 4096}}])
    derived = [w for w in workloads if w["cpu"]]
    assert derived and all(32 * 32 + 64 * w["axes"]["M"] <= CPU_ELEMENTS for w in derived)


def test_a_scalar_written_at_two_precisions_is_one_value_and_the_gemm_still_imports(tmp_path):
    definition = _gemm(tmp_path / "data", 4096, 4096, [128, 512, 2048], alphas=[SCALE32, SCALE64, SCALE64])
    imported = import_task(definition, fmt="flashinfer", out=tmp_path / "tasks")
    task = load_task(imported.directory)
    assert task.spec.params == {"alpha": SCALE64} and task.input_names == ["A", "B"]
    assert any("differ only in float32 rounding" in line for line in imported.inferred)
    wl = task.workloads(cpu_only=True)[0]
    inputs = task.make_inputs(wl.name)
    expected = SCALE64 * (inputs["A"] @ inputs["B"].T)
    assert torch.allclose(task.run_reference(inputs)["C"], expected, atol=1e-4, rtol=1e-4)


def test_const_axes_no_cpu_can_hold_are_refused_with_the_true_reason(tmp_path):
    definition = _gemm(tmp_path / "data", 16384, 16384, [64, 128, 256, 512])
    with pytest.raises(TaskError) as err:
        import_task(definition, fmt="flashinfer", out=tmp_path / "tasks")
    message = str(err.value)
    assert "const axes (N=16384, K=16384) make every workload hold at least 268,468,224 elements" in message
    assert f"{CPU_CONST_ELEMENTS:,}" in message and "verified only on a GPU" in message
    assert not (tmp_path / "tasks").exists()


def test_a_safetensors_input_still_gives_its_distribution(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    definition = _gemm(tmp_path / "data", 4096, 4096, [128, 512, 2048])
    wl_file = tmp_path / "data" / "workloads" / "gemm" / "gemm_n4096_k4096.jsonl"
    rows = [json.loads(line) for line in wl_file.read_text().splitlines()]
    rows[0]["workload"]["inputs"]["A"] = {"type": "safetensors", "path": "a.safetensors", "tensor_key": "A"}
    wl_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    safetensors.save_file({"A": torch.rand(128, 4096)}, str(wl_file.parent / "a.safetensors"))
    imported = import_task(definition, fmt="flashinfer", out=tmp_path / "tasks")
    assert load_task(imported.directory).spec.inputs["A"].distribution.kind == "uniform"
