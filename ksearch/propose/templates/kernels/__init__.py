"""Triton sources of the strategy templates, one module per template (`<family>_<strategy>.py`), plus
the helpers they share (`launch.py` for host code, `<family>_parts.py` for a family's jit functions,
shared kernels and host helpers).

Each template module is a real candidate: knob constants at the top, a `@triton.jit` kernel with
`tl.constexpr` parameters (or a family's shared kernel), and one entry per task named after the task
(or made by the family's entry factory, as the RMSNorm files do). `base.render_source` turns
one into a self-contained candidate; nothing imports these modules at run time.
"""
