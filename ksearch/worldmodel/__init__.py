"""The world model: K-Search's typed strategy tree, edited through validated, logged ops."""

from ksearch.worldmodel.model import (
    ROOT,
    WM_EDIT,
    EditOp,
    Node,
    NodeKind,
    NodeStatus,
    WorldModel,
    WorldModelError,
    record,
    to_payload,
)
from ksearch.worldmodel.render import render_rich, render_text, to_dot, to_svg, write_png, write_svg

__all__ = [
    "ROOT",
    "WM_EDIT",
    "EditOp",
    "Node",
    "NodeKind",
    "NodeStatus",
    "WorldModel",
    "WorldModelError",
    "record",
    "render_rich",
    "render_text",
    "to_dot",
    "to_payload",
    "to_svg",
    "write_png",
    "write_svg",
]
