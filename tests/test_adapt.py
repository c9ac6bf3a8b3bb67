"""Imported tasks searched by the offline proposer: a task whose contract fits a built-in family
borrows its templates under its own signature; one that fits none is refused with the proposers
that can search it."""

import textwrap
from pathlib import Path

import pytest

from ksearch.errors import ConfigError
from ksearch.evidence import Status
from ksearch.harness.evaluate import Evaluator
from ksearch.propose.adapt import TaskTemplates, fit
from ksearch.propose.offline import OfflineProposer
from ksearch.task import load_task

TASK = """\
name: {name}
description: an imported problem
op_family: imported
models: none (a test problem)
axes:
{axes}
dtypes: [float32]
inputs:
{inputs}
outputs:
{outputs}
entry: run({entry})
workloads:
{workloads}
distributions:
  normal: {{}}
  heavy_tailed: {{{first}: {{kind: student_t, df: 3, clip: 100.0}}}}
tolerances:
  float32: {{atol: 1.0e-4, rtol: 1.0e-4, matched_ratio: 0.999, max_error_cap: 0.01}}
flops: "1"
bytes: "1"
languages: [triton]
"""


def _task(root: Path, name: str, axes: list, inputs: dict, outputs: dict, reference: str, sizes: list[str]):
    d = root / name
    d.mkdir()
    fmt = lambda tensors: "\n".join(
        f"  {k}: {{dtype: $dtype, shape: [{', '.join(v)}]}}" for k, v in tensors.items()
    )
    (d / "task.yaml").write_text(
        TASK.format(
            name=name,
            axes="\n".join(f"  {a}: {{kind: var}}" for a in axes),
            inputs=fmt(inputs),
            outputs=fmt(outputs),
            entry=", ".join([*inputs, *outputs]),
            workloads="\n".join(
                f"  - {{name: w{i}, axes: {{{a}}}, cpu: {str(i < 2).lower()}}}" for i, a in enumerate(sizes)
            ),
            first=next(iter(inputs)),
        )
    )
    (d / "reference.py").write_text("import torch\n\n\n" + textwrap.dedent(reference))
    return load_task(d)


@pytest.fixture
def softmax_3d(tmp_path):
    return _task(
        tmp_path,
        "kb_softmax_3d",
        ["B", "S", "D"],
        {"logits": ["B", "S", "D"]},
        {"probs": ["B", "S", "D"]},
        "def reference(logits):\n    return torch.softmax(logits, dim=-1)\n",
        ["B: 2, S: 3, D: 40", "B: 3, S: 5, D: 33", "B: 1, S: 1, D: 128", "B: 8, S: 512, D: 4096"],
    )


@pytest.fixture
def linear_no_bias(tmp_path):
    # out = x @ w.T with the weight first: the GEMM with its operands swapped and one transposed
    return _task(
        tmp_path,
        "kb_linear",
        ["M", "N", "K"],
        {"w": ["N", "K"], "x": ["M", "K"]},
        {"y": ["M", "N"]},
        "def reference(w, x):\n    return x @ w.T\n",
        ["M: 16, N: 24, K: 32", "M: 7, N: 20, K: 36", "M: 1, N: 64, K: 64", "M: 4096, N: 4096, K: 4096"],
    )


def test_a_softmax_over_the_last_dim_of_any_rank_fits_the_softmax_templates(softmax_3d):
    found = fit(softmax_3d)
    assert found is not None and found.family == "softmax"
    assert found.call == "logits.reshape(-1, logits.shape[-1]), probs.reshape(-1, probs.shape[-1])"


def test_a_gemm_with_swapped_and_transposed_operands_fits_the_gemm_templates(linear_no_bias):
    found = fit(linear_no_bias)
    assert found is not None and found.family == "matmul" and found.call == "x, w.t(), y"


@pytest.mark.parametrize("which", ["softmax_3d", "linear_no_bias"])
def test_an_adapted_template_candidate_passes_the_harness_under_the_tasks_own_signature(which, request):
    task = request.getfixturevalue(which)
    tt = TaskTemplates(task)
    t = tt.templates[0]
    source = tt.render(t, t.default_knobs())
    assert (
        f"def run({', '.join(task.entry_args)}) -> None:" in source and f"\n# task: {task.name}\n" in source
    )
    path = Path(task.root) / "candidate.py"
    path.write_text(source)
    with Evaluator("cpu", timeout_s=300) as ev:
        packet = ev.evaluate(path, task, seeds=(0,))
    assert packet.status is Status.PASS, (packet.failure_class, packet.message)


def test_the_offline_proposer_plans_an_imported_task_with_the_fitted_family(linear_no_bias):
    prop = OfflineProposer(linear_no_bias)
    assert {t.tasks for t in prop.templates} == {("matmul",)}
    assert prop.calls and "fits matmul" in prop.calls[0].summary


def test_a_task_no_family_fits_names_the_proposers_that_can_search_it(tmp_path):
    task = _task(
        tmp_path,
        "kb_cumsum",
        ["M", "N"],
        {"x": ["M", "N"]},
        {"y": ["M", "N"]},
        "def reference(x):\n    return torch.cumsum(x, dim=-1)\n",
        ["M: 4, N: 16", "M: 3, N: 20", "M: 1, N: 1", "M: 512, N: 4096"],
    )
    assert fit(task) is None
    with pytest.raises(ConfigError, match="openai-compatible:MODEL@URL") as err:
        OfflineProposer(task)
    assert "roadmap" not in str(err.value)
