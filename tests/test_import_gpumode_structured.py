"""GPU MODE problems beyond a flat tuple of tensors, written here in the reference-kernels layout:
nested `data` (dicts of weights, a config dict of scalars), integer and boolean inputs, and references
that need a vendor library missing here (target-only when the shapes can still be read, refused naming
the module when they cannot). No network; each imports in a few seconds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from ksearch.errors import TaskError
from ksearch.task import load_task
from ksearch.task.describe import describe_task
from ksearch.task.importers import import_task
from ksearch.task.importers.gpumode import _fit_dim, _fit_points, submission_to_candidate


def _problem(
    root: Path, name: str, reference: str, tests: list[dict], benchmarks: list[dict] | None = None
) -> Path:
    folder = root / "problems" / "contest" / name
    folder.mkdir(parents=True)
    (folder / "reference.py").write_text(textwrap.dedent(reference))
    rows = lambda specs: "".join(f"  - {spec}\n" for spec in specs)  # noqa: E731
    (folder / "task.yml").write_text(
        f"lang: py\ndescription: synthetic {name}\ntests:\n{rows(tests)}"
        + (f"benchmarks:\n{rows(benchmarks)}" if benchmarks else "")
    )
    return folder


NESTED = """
    import torch
    import torch.nn.functional as F
    from task import input_t, output_t


    def generate_input(n: int, d: int, hidden: int, seed: int, gated: bool) -> input_t:
        gen = torch.Generator(device="cuda").manual_seed(seed)
        x = torch.randn(n, d, device="cuda", generator=gen)
        keep = torch.rand(n, device="cuda", generator=gen) < 0.75
        weights = {
            "w.in": torch.randn(hidden, d, device="cuda", generator=gen) / d ** 0.5,
            "w.out": torch.randn(d, hidden, device="cuda", generator=gen) / hidden ** 0.5,
            "norm.weight": torch.rand(d, device="cuda", generator=gen) + 0.5,
        }
        config = {"d": d, "hidden": hidden, "eps": 1e-5, "act": "relu", "gated": gated}
        return x, keep, weights, config


    def ref_kernel(data: input_t) -> output_t:
        x, keep, weights, config = data
        assert weights["w.in"].shape == (config["hidden"], config["d"])
        xn = F.layer_norm(x, (config["d"],), weights["norm.weight"], eps=config["eps"])
        h = torch.relu(xn @ weights["w.in"].T)
        return (h @ weights["w.out"].T) * keep[:, None]
"""


def test_nested_dicts_become_named_inputs_and_params(tmp_path):
    folder = _problem(
        tmp_path,
        "mlp_py",
        NESTED,
        [
            {"n": 16, "d": 32, "hidden": 48, "seed": 1, "gated": True},
            {"n": 33, "d": 32, "hidden": 64, "seed": 2, "gated": False},
        ],
        [{"n": 1024, "d": 256, "hidden": 512, "seed": 3, "gated": True}],
    )
    task = load_task(import_task(folder, fmt="gpumode", out=tmp_path / "tasks").directory)
    spec = task.spec
    # tensors named by their path in data; the dict keys made identifiers
    assert task.input_names == ["x", "keep", "weights_w_in", "weights_w_out", "weights_norm_weight"]
    assert task.output_names == ["output"]
    assert spec.inputs["weights_w_in"].shape == ["hidden", "d"] and spec.outputs["output"].shape == ["n", "d"]
    assert spec.inputs["keep"].dtype == "bool" and spec.inputs["keep"].distribution.kind == "bernoulli"
    # config ints that follow the axes are params; eps, act and gated are constants of the layout
    assert dict(spec.params) == {"config_d": "d", "config_hidden": "hidden"}
    assert spec.var_axes == ["n", "d", "hidden"]
    # the reference rebuilds the nested data: compare with the computation done by hand
    wl = task.workloads(cpu_only=True)[0]
    inputs = task.make_inputs(wl, "normal", 0)
    got = task.run_reference(inputs, workload=wl)["output"]
    x, keep, w_in, w_out, g = inputs.values()
    want = (
        torch.relu(torch.nn.functional.layer_norm(x, (x.shape[1],), g, eps=1e-5) @ w_in.T) @ w_out.T
    ) * keep[:, None]
    torch.testing.assert_close(got, want)

    # a submission's custom_kernel receives the same structure back, config ints read off the shapes
    sub = tmp_path / "sub.py"
    sub.write_text(
        textwrap.dedent("""
        import torch
        from task import input_t, output_t

        def custom_kernel(data: input_t) -> output_t:
            x, keep, weights, config = data
            assert config["act"] == "relu" and config["eps"] == 1e-5 and config["d"] == x.shape[1]
            xn = torch.nn.functional.layer_norm(x, (config["d"],), weights["norm.weight"], eps=config["eps"])
            return (torch.relu(xn @ weights["w.in"].T) @ weights["w.out"].T) * keep[:, None]
    """)
    )
    cand = submission_to_candidate(sub, task, tmp_path / "cand.py")
    text = cand.read_text()
    assert "'norm.weight': weights_norm_weight" in text and "'d': (x.shape[1])" in text
    namespace: dict = {}
    exec(compile(text, str(cand), "exec"), namespace)  # noqa: S102  (our own generated wrapper)
    out = torch.empty_like(got)
    namespace["run"](*inputs.values(), out)
    torch.testing.assert_close(out, got)


HISTOGRAM = """
    import torch
    from task import input_t, output_t


    def generate_input(size: int, contention: int, seed: int) -> input_t:
        gen = torch.Generator(device="cuda").manual_seed(seed)
        data = torch.randint(0, 64, (size,), device="cuda", dtype=torch.uint8, generator=gen)
        hot = torch.rand(size, device="cuda", generator=gen) < contention / 100
        data[hot] = 7
        return data, torch.empty(64, device="cuda", dtype=torch.int64)


    def ref_kernel(data: input_t) -> output_t:
        values, out = data
        out[...] = torch.bincount(values.long(), minlength=64)
        return out
"""


def test_integer_inputs_get_integer_distributions(tmp_path):
    folder = _problem(
        tmp_path,
        "hist_py",
        HISTOGRAM,
        [{"size": 1000, "contention": 10, "seed": 1}, {"size": 3000, "contention": 90, "seed": 2}],
        [{"size": 100000, "contention": 10, "seed": 3}],
    )
    imported = import_task(folder, fmt="gpumode", out=tmp_path / "tasks")
    task = load_task(imported.directory)
    spec = task.spec
    assert imported.flags == []
    # contention sizes nothing: it only steers generate_input, so it is no axis
    assert spec.var_axes == ["size"] and any("contention" in line for line in imported.inferred)
    assert task.input_names == ["values"] and task.output_names == ["out"]
    gen = spec.inputs["values"].distribution
    assert (spec.inputs["values"].dtype, gen.kind, gen.low, gen.high) == ("uint8", "randint", 0, 64)
    assert spec.outputs["out"].dtype == "int64" and spec.outputs["out"].shape == [64]
    # integer inputs only: the stress distribution is skewed (zipf) draws over the same range
    assert spec.distributions["skewed"]["values"].kind == "zipf"
    wl = task.workloads(cpu_only=True)[0]
    for dist in ("normal", "skewed"):
        values = task.make_inputs(wl, dist, 0)["values"]
        assert values.dtype == torch.uint8 and int(values.max()) < 64
        out = task.run_reference({"values": values}, workload=wl)["out"]
        assert torch.equal(out, torch.bincount(values.long(), minlength=64))


VENDOR_IN_REF = """
    import torch
    from fancyvendor_xyz.ops import fused_gemm  # a vendor library that is not installed here
    from task import input_t, output_t


    def generate_input(m: int, n: int, k: int, seed: int) -> input_t:
        gen = torch.Generator(device="cuda").manual_seed(seed)
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
        b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16, generator=gen)
        c = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
        return a, b, c


    def ref_kernel(data: input_t) -> output_t:
        a, b, c = data
        fused_gemm(a, b, c)
        return c
"""

VENDOR_IN_INPUTS = """
    import torch
    import fancyvendor_xyz
    from task import input_t, output_t


    def generate_input(m: int, k: int, seed: int) -> input_t:
        a = torch.randn(m, k, device="cuda")
        return fancyvendor_xyz.quant.to_mxfp4(a)


    def ref_kernel(data: input_t) -> output_t:
        return fancyvendor_xyz.dequant(data)
"""


def test_missing_vendor_library_target_only_or_refused(tmp_path):
    specs = [
        {"m": 64, "n": 128, "k": 256, "seed": 1},
        {"m": 128, "n": 256, "k": 512, "seed": 2},
        {"m": 256, "n": 256, "k": 1024, "seed": 3},
        {"m": 4096, "n": 8192, "k": 7168, "seed": 4},
    ]
    folder = _problem(tmp_path, "vgemm", VENDOR_IN_REF, specs)
    (tmp_path / "problems" / "contest.yaml").write_text(
        "problems:\n  - directory: contest/vgemm\n    gpus: [MI355X]\n"
    )
    imported = import_task(folder, fmt="gpumode", out=tmp_path / "tasks")
    task = load_task(imported.directory)  # valid without cpu: true workloads
    only = task.spec.target_only
    assert only is not None and only.targets == ["mi355x"]
    assert "fancyvendor_xyz.ops.fused_gemm" in only.reason and "\n" not in only.reason
    # shapes read from generate_input; the output is the torch.empty buffer ref_kernel would fill
    assert task.input_names == ["a", "b"] and task.output_names == ["c"]
    assert [task.spec.inputs[n].shape for n in ("a", "b")] == [["m", "k"], ["n", "k"]]
    assert task.spec.outputs["c"].shape == ["m", "n"] and task.spec.outputs["c"].dtype == "bfloat16"
    assert not task.workloads(cpu_only=True) and len(task.workloads()) >= 4
    assert describe_task(task)["target_only"]["targets"] == ["mi355x"]

    # where generate_input itself calls the library, not even the shapes can be read: one line naming it
    folder = _problem(tmp_path, "vquant", VENDOR_IN_INPUTS, [{"m": 64, "k": 64, "seed": 1}])
    with pytest.raises(TaskError, match=r"needs fancyvendor_xyz, which is not installed here") as err:
        import_task(folder, fmt="gpumode", out=tmp_path / "tasks")
    assert "\n" not in str(err.value) and "fancyvendor_xyz.quant.to_mxfp4" in str(err.value)


def test_dims_fitted_as_sums_quotients_and_rounded_up_quotients():
    # a conv's output side: size - kernel + 1, from the base point and one probe per axis
    runs = [{"size": 32, "ks": 4}, {"size": 64, "ks": 4}, {"size": 32, "ks": 8}]
    assert _fit_dim([29, 61, 25], runs) == "size - ks + 1"
    runs = [{"h": 256, "g": 64}, {"h": 512, "g": 64}, {"h": 256, "g": 128}]
    assert _fit_dim([4, 8, 2], runs) == "h//g"
    # a scale count ceil(n / 128) looks constant at n = 64 and 128: the specs' points settle it
    points = [({"n": 64}, 1), ({"n": 128}, 1), ({"n": 576}, 5), ({"n": 1536}, 12)]
    assert _fit_points(points, ["n"]) == "(n + 127)//128"


def test_target_only_field_is_validated():
    from ksearch.task.spec import TargetOnlySpec

    ok = TargetOnlySpec(
        reason="ref_kernel calls aiter.fused_moe, and aiter is not installed here", targets=["mi355x"]
    )
    assert ok.targets == ["mi355x"]
    for bad in (
        {"reason": "two\nlines", "targets": ["b200"]},
        {"reason": "x", "targets": []},
        {"reason": "x", "targets": ["B200 GPU"]},
        {"reason": "x", "targets": ["b200", "b200"]},
        {"reason": "x", "targets": ["b200"], "extra": 1},
    ):
        with pytest.raises(ValueError):
            TargetOnlySpec.model_validate(bad)
