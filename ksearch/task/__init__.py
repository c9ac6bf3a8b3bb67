"""Task contracts: op definition, reference, input distributions, shape suite, tolerances, roofline.

Public API:
    list_tasks() -> list[str]                      built-in task names
    load_task(name_or_path) -> Task                built-in name, task directory or task.yaml
    Task                                           workloads, make_inputs, allocate_outputs,
                                                   run_reference, flops, bytes, tolerance, ...
    describe_task(task, dtype=None) -> dict        data for `ksearch tasks show`
    render_task(task, dtype=None) -> rich Group    the same, rendered
    list_task_summaries() / render_task_list(rows) data and one line a task for `ksearch tasks list`

Importing this package does not import torch; the methods that make tensors do.
"""

from ksearch.task.contract import Task, TensorInfo
from ksearch.task.describe import (
    describe_task,
    list_task_summaries,
    render_task,
    render_task_list,
    summarize_task,
)
from ksearch.task.formula import Formula, evaluate_formula, parse_formula
from ksearch.task.load import list_tasks, load_task, load_task_spec, parse_task_spec
from ksearch.task.spec import (
    DTYPE_ITEMSIZE,
    DTYPE_VARIANT,
    GENERATOR_KINDS,
    HEAVY_TAILED_KINDS,
    LANGUAGES,
    AxisSpec,
    TaskSpec,
    TensorSpec,
    ToleranceSpec,
    WorkloadSpec,
)

__all__ = [
    "DTYPE_ITEMSIZE",
    "DTYPE_VARIANT",
    "GENERATOR_KINDS",
    "HEAVY_TAILED_KINDS",
    "LANGUAGES",
    "AxisSpec",
    "Formula",
    "Task",
    "TaskSpec",
    "TensorInfo",
    "TensorSpec",
    "ToleranceSpec",
    "WorkloadSpec",
    "describe_task",
    "evaluate_formula",
    "list_task_summaries",
    "list_tasks",
    "load_task",
    "load_task_spec",
    "parse_formula",
    "parse_task_spec",
    "render_task",
    "render_task_list",
    "summarize_task",
]
