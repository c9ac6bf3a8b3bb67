"""Strategy templates of the offline proposer: how to write fast Triton kernels per op family, as
Triton source files (`kernels/`, one per template, knobs as module constants) over explicit knob
spaces.

Public API:
    Template                                   one strategy: id, tasks, decision, title, rationale, knobs,
                                               source (its kernel file), valid(knobs),
                                               render(task, knobs) -> candidate source
    templates_for(task_name, backend=None)     every template implementing a task (for targets of
                                               one Triton backend, cuda or hip, where given)
    template(template_id) -> Template          by id; ConfigError naming the known ids
    ALL_TEMPLATES                              every template, family by family

Families: norms (rmsnorm, fused_add_rmsnorm), softmax, gemm (matmul), elementwise (silu_and_mul),
attention (gqa_decode_attention), moe (moe_topk_routing). Each family has at least one risky
template whose rationale says when it fails, so an honest search meets failures and learns to
prune them.
"""

from __future__ import annotations

from ksearch.errors import ConfigError
from ksearch.propose.templates import attention, elementwise, gemm, moe, norms, softmax
from ksearch.propose.templates.base import Template

ALL_TEMPLATES: tuple[Template, ...] = (
    *norms.TEMPLATES,
    *softmax.TEMPLATES,
    *gemm.TEMPLATES,
    *elementwise.TEMPLATES,
    *attention.TEMPLATES,
    *moe.TEMPLATES,
)


def templates_for(task_name: str, backend: str | None = None) -> list[Template]:
    """Every template implementing `task_name` (empty for a task no template knows); with `backend`
    (cuda, hip), those searched for its targets."""
    return [t for t in ALL_TEMPLATES if task_name in t.tasks and (backend is None or backend in t.backends)]


def template(template_id: str) -> Template:
    """The template with this id; ConfigError (naming the known ids) for an unknown one."""
    for t in ALL_TEMPLATES:
        if t.id == template_id:
            return t
    known = ", ".join(t.id for t in ALL_TEMPLATES)
    raise ConfigError(f"unknown strategy template {template_id!r}; known templates: {known}")


__all__ = ["ALL_TEMPLATES", "Template", "template", "templates_for"]
