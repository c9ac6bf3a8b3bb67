"""KernelBench problems as the public suite writes them: size constants as expressions and tuples,
sizes too large for this machine (never run at full size), scalar inputs, 0-d outputs, weights the
model's code fixes, ops the meta device cannot run, and one-line refusals where nothing can scale."""

import resource
import subprocess
import sys
import textwrap

import pytest
import torch

from ksearch.errors import TaskError
from ksearch.task import load_task
from ksearch.task.importers import import_task
from ksearch.task.importers.kernelbench import _knobs, _load

HEADER = "import torch\nimport torch.nn as nn\n\n"


def problem(tmp_path, name, body):
    path = tmp_path / f"{name}.py"
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def imported(path, tmp_path):
    result = import_task(path, fmt="kernelbench", out=tmp_path / "tasks")
    return result, load_task(result.directory)


MATMUL = """
class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


N = 2048 * 2
M = N
K = 4 * N // 2


def get_inputs():
    return [torch.rand(M, K), torch.rand(K, N)]


def get_init_inputs():
    return []
"""


def test_expression_constants_are_read_and_dependents_follow_an_override(tmp_path):
    path = problem(tmp_path, "matmul_expr", MATMUL)
    assert {k: kn.value for k, kn in _knobs(path.read_text()).items()} == {"N": 4096}  # M and K follow N
    small = _load(path, {"N": 10})
    assert (small.N, small.M, small.K) == (10, 10, 20)
    result, task = imported(path, tmp_path)
    assert task.spec.inputs["A"].shape == ["N_AXIS", "2*N_AXIS"]
    assert task.spec.inputs["B"].shape == ["2*N_AXIS", "N_AXIS"]
    assert task.workload("kernelbench").axes == {"N_AXIS": 4096, "FLOPS": 2 * 4096 * 8192 * 4096}
    cpu = task.workloads(cpu_only=True)
    assert len(cpu) >= 3 and all(w.axes["N_AXIS"] < 4096 for w in cpu)
    wl = cpu[0]
    inputs = task.make_inputs(wl, "normal", 0)
    assert torch.allclose(task.run_reference(inputs, workload=wl)["out"], inputs["A"] @ inputs["B"])


def test_tuple_constants_scale_per_group_of_equal_literals(tmp_path):
    path = problem(
        tmp_path,
        "conv_tuple",
        """
        class Model(nn.Module):
            def __init__(self, cin, cout, kernel_size):
                super().__init__()
                self.conv = nn.Conv2d(cin, cout, kernel_size)

            def forward(self, x):
                return self.conv(x)


        batch_size = 4
        in_channels = 3
        out_channels = 64
        kernel_size = (3, 5)
        input_shape = (batch_size, in_channels, 64, 64)


        def get_inputs():
            return [torch.rand(*input_shape)]


        def get_init_inputs():
            return [in_channels, out_channels, kernel_size]
        """,
    )
    knobs = _knobs(path.read_text())
    assert knobs["input_shape_2"].leaves == (2, 3) and knobs["kernel_size_1"].value == 5
    assert "input_shape_0" not in knobs  # it is batch_size's, not a literal
    assert _load(path, {"input_shape_2": 9, "batch_size": 2}).input_shape == (2, 3, 9, 9)
    _, task = imported(path, tmp_path)
    assert task.spec.inputs["conv_weight"].shape == ["OUT_CHANNELS", 3, 3, 5]
    assert task.workload("kernelbench").axes["INPUT_SHAPE_2"] == 64
    assert all(w.axes["INPUT_SHAPE_2"] < 64 for w in task.workloads(cpu_only=True))


SOFTMAX_6GIB = """
class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.softmax(x, dim=1)


batch_size = 4096
dim = 393216


def get_inputs():
    return [torch.rand(batch_size, dim)]


def get_init_inputs():
    return []
"""


def _peak_rss_of_import(path, out) -> tuple[int, subprocess.CompletedProcess]:
    code = (
        "import resource, sys\nfrom ksearch.task.importers import import_task\n"
        f"import_task({str(path)!r}, fmt='kernelbench', out={str(out)!r})\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return int(done.stdout.split()[-1]) * 1024 if done.returncode == 0 else -1, done


@pytest.mark.parametrize(
    "source",
    [
        SOFTMAX_6GIB,
        SOFTMAX_6GIB.replace(
            "return torch.softmax(x, dim=1)",
            "return torch.softmax(x, dim=1) * (2 if x.sum().item() > 0 else 3)",
        ),
    ],
    ids=["meta", "data_dependent"],
)
def test_a_problem_too_large_for_memory_is_imported_without_running_it_at_full_size(source, tmp_path):
    path = problem(tmp_path, "softmax_big", source)
    peak, done = _peak_rss_of_import(path, tmp_path / "tasks")
    assert done.returncode == 0, done.stderr
    assert peak < 2 << 30, f"peak RSS {peak / 2**30:.2f} GiB"  # the input alone is 6 GiB
    task = load_task(tmp_path / "tasks" / "softmax_big")
    assert task.workload("kernelbench").axes == {"BATCH_SIZE": 4096, "DIM": 393216}
    assert task.spec.outputs["out"].shape == ["BATCH_SIZE", "DIM"]
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 >= peak  # the child was measured


def test_scalar_inputs_become_params(tmp_path):
    path = problem(
        tmp_path,
        "scaled_rows",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()

            def forward(self, x, scale, n):
                return x.reshape(-1, n) * scale


        batch_size = 30
        dim = 256


        def get_inputs():
            return [torch.randn(batch_size, dim), 2.5, dim]


        def get_init_inputs():
            return []
        """,
    )
    result, task = imported(path, tmp_path)
    assert task.input_names == ["x"] and task.spec.params == {
        "batch_size": "BATCH_SIZE",
        "dim": "DIM",
        "scale": 2.5,
    }
    assert any("scale=2.5" in line for line in result.inferred)
    for wl in task.workloads(cpu_only=True):
        inputs = task.make_inputs(wl, "normal", 0)
        assert torch.equal(task.run_reference(inputs, workload=wl)["out"], inputs["x"] * 2.5)


def test_a_scalar_loss_becomes_a_one_element_output(tmp_path):
    path = problem(
        tmp_path,
        "mse",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()

            def forward(self, a, b):
                return torch.mean((a - b) ** 2)


        batch_size = 32768
        input_shape = (32768,)


        def get_inputs():
            return [torch.rand(batch_size, *input_shape), torch.rand(batch_size, *input_shape)]


        def get_init_inputs():
            return []
        """,
    )
    _, task = imported(path, tmp_path)
    assert task.spec.outputs["out"].shape == [1]
    assert task.workload("kernelbench").axes["INPUT_SHAPE_0"] == 32768
    wl = task.workloads(cpu_only=True)[0]
    inputs = task.make_inputs(wl, "normal", 0)
    out = task.run_reference(inputs, workload=wl)["out"]
    assert out.shape == (1,) and torch.allclose(out[0], ((inputs["a"] - inputs["b"]) ** 2).mean())


FIXED_LINEAR = """
class Model(nn.Module):
    def __init__(self, n_out):
        super().__init__()
        self.fc = nn.Linear(WIDTH, WIDTH)
        self.head = nn.Linear(WIDTH, n_out)

    def forward(self, x):
        return self.head(torch.relu(self.fc(x)))


batch_size = 64
num_classes = 1000


def get_inputs():
    return [torch.rand(batch_size, WIDTH)]


def get_init_inputs():
    return [num_classes]
"""


def test_weights_the_code_fixes_keep_larger_cpu_workloads_and_say_so(tmp_path):
    path = problem(tmp_path, "fixed_mlp", FIXED_LINEAR.replace("WIDTH", "256"))
    result, task = imported(path, tmp_path)
    assert task.spec.inputs["fc_weight"].shape == [256, 256]
    cpu = task.workloads(cpu_only=True)
    assert len(cpu) >= 3 and all("slow in the CPU interpreter" in w.note for w in cpu)
    assert any("weights the model's code fixes" in line for line in result.inferred)


def test_weights_too_large_for_any_cpu_workload_are_refused_in_one_line(tmp_path):
    path = problem(tmp_path, "huge_mlp", FIXED_LINEAR.replace("WIDTH", "16384"))
    with pytest.raises(
        TaskError, match=r"follow no size constant, over the \d+ a CPU workload may hold"
    ) as err:
        imported(path, tmp_path)
    assert "\n" not in str(err.value) and "(16384, 16384)" in str(err.value)


def test_a_problem_whose_constants_shape_nothing_is_refused_in_one_line(tmp_path):
    path = problem(
        tmp_path,
        "fixed_size",
        """
        class Model(nn.Module):
            def __init__(self, scale):
                super().__init__()
                self.scale = scale

            def forward(self, x):
                return x * self.scale


        scale = 3


        def get_inputs():
            return [torch.rand(512)]


        def get_init_inputs():
            return [scale]
        """,
    )
    with pytest.raises(
        TaskError, match=r"no size constant changes a shape \(constants tried: scale\)"
    ) as err:
        imported(path, tmp_path)
    assert "\n" not in str(err.value)


def test_constants_that_must_stay_equal_scale_together(tmp_path):
    path = problem(
        tmp_path,
        "hinge",
        """
        class Model(nn.Module):
            def __init__(self):
                super().__init__()

            def forward(self, predictions, targets):
                return torch.mean(torch.clamp(1 - predictions * targets, min=0))


        batch_size = 32768
        input_shape = (32768,)


        def get_inputs():
            return [torch.rand(batch_size, *input_shape), torch.randint(0, 2, (batch_size,)).float() * 2 - 1]


        def get_init_inputs():
            return []
        """,
    )
    result, task = imported(path, tmp_path)
    assert task.spec.params == {"batch_size": "BATCH_SIZE", "input_shape_0": "BATCH_SIZE"}
    assert task.spec.inputs["predictions"].shape == ["BATCH_SIZE", "BATCH_SIZE"]
    assert any("scaled together: batch_size, input_shape_0" in line for line in result.inferred)


def test_a_full_size_run_too_slow_is_extrapolated_with_its_flops(tmp_path, monkeypatch):
    import ksearch.task.importers.kernelbench as kb

    monkeypatch.setattr(kb, "FULL_S", 1e-3)  # every full-size shape-only run "too slow"
    path = problem(tmp_path, "matmul_slow", MATMUL)
    result, task = imported(path, tmp_path)
    assert any("extrapolated along the axes" in line and "took over" in line for line in result.inferred)
    assert task.spec.inputs["A"].shape == ["N_AXIS", "2*N_AXIS"]
    assert task.workload("kernelbench").axes == {"N_AXIS": 4096, "FLOPS": 2 * 4096 * 8192 * 4096}


def test_one_valued_weights_are_spread_and_class_indices_follow_their_size(tmp_path):
    path = problem(
        tmp_path,
        "bn_ce",
        """
        class Model(nn.Module):
            def __init__(self, num_classes):
                super().__init__()
                self.bn = nn.BatchNorm1d(num_classes)

            def forward(self, logits, targets):
                return torch.nn.functional.cross_entropy(self.bn(logits), targets)


        batch_size = 4096
        num_classes = 1000


        def get_inputs():
            return [torch.randn(batch_size, num_classes), torch.randint(0, num_classes, (batch_size,))]


        def get_init_inputs():
            return [num_classes]
        """,
    )
    result, task = imported(
        path, tmp_path
    )  # refused as "holds one value everywhere" were bn.weight kept at 1
    weight = task.spec.inputs["bn_weight"].distribution
    assert weight.kind == "uniform" and weight.low < 1 < weight.high
    assert any("drawn around it" in line and "bn_weight" in line for line in result.inferred)
    targets = task.spec.inputs["targets"].distribution
    assert targets.kind == "randint" and targets.high == "NUM_CLASSES"
    for wl in task.workloads(cpu_only=True):  # every index below that workload's class count
        assert int(task.make_inputs(wl, "normal", 0)["targets"].max()) < wl.axes["NUM_CLASSES"]
