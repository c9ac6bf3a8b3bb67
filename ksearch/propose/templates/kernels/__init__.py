"""Triton sources of the strategy templates, one module per template (`<family>_<strategy>.py`), plus
the helpers they share (`launch.py` for host code, `<family>_parts.py` for jit functions).

Each template module is a real candidate: knob constants at the top, a `@triton.jit` kernel with
`tl.constexpr` parameters, and one entry per task named after the task. `base.render_source` turns
one into a self-contained candidate; nothing imports these modules at run time.
"""
