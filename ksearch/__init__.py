"""ksearch: evolutionary, agentic search for GPU kernels.

`import ksearch` stays light: no LLM SDK, no torch, no triton is imported here.
"""

__version__ = "0.1.0"
