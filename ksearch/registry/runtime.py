"""Run-time side of an exported kernel library: one function per operator, each a `torch.library`
custom op (with a fake implementation, so it traces under torch.compile) that allocates the outputs,
picks a kernel through `select.explain` once per (device, dtype, shape, params) and runs it, or runs
the task's reference with one warning per such signature when no kernel fits.

`ksearch export` copies this file into the package it writes; it imports only torch and its sibling
`select`. CPU kernels run through the Triton interpreter only when <PACKAGE>_INTERPRET=1 is set before
the package is imported: the interpreter is process-wide (TRITON_INTERPRET) and slow, so it is never
turned on behind a user's back.
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from .select import (
    Kernel,
    Manifest,
    OpSpec,
    Platform,
    axes_of,
    constant_params,
    detect_platform,
    evaluate,
    explain,
    output_shapes,
    param_values,
    render_explanation,
)

_SCHEMA_TYPES = {bool: "bool", int: "int", float: "float"}


class Operator:
    """One operator of the package: its selection cache and the custom op that runs it."""

    def __init__(self, package: str, manifest: Manifest, spec: OpSpec, interpret: bool) -> None:
        self.package, self.manifest, self.spec, self.interpret = package, manifest, spec, interpret
        self.platforms: dict[str, Platform] = {}  # detected once per device
        self.choices: dict[tuple, Kernel | None] = {}  # (device, dtype, axes, params) -> kernel
        self.selections = 0  # how often `explain` ran: the cache's misses
        self.params = constant_params(spec)
        self.custom_op = self._register()
        self.function = self._function()

    # ---- selection ----------------------------------------------------------------------------

    def platform(self, device: torch.device) -> Platform:
        key = str(device)
        if key not in self.platforms:
            self.platforms[key] = detect_platform(device, self.interpret)
        return self.platforms[key]

    def variant(self, inputs: Sequence[torch.Tensor]) -> str:
        """The dtype variant of a call: that of the inputs declared as $dtype."""
        for decl, t in zip(self.spec.inputs, inputs, strict=True):
            if decl.dtype == "$dtype":
                return str(t.dtype).removeprefix("torch.")
        return self.manifest.kernels_of(self.spec.name)[0].dtype if self.manifest.kernels else ""

    def choose(
        self, inputs: Sequence[torch.Tensor], params: dict[str, Any], platform: Platform | None = None
    ) -> Kernel | None:
        axes = axes_of(self.spec, [tuple(t.shape) for t in inputs])
        dtype = self.variant(inputs)
        where = platform or self.platform(inputs[0].device)
        key = (where, dtype, tuple(sorted(axes.items())), tuple(sorted(params.items())))
        if key not in self.choices:
            self.selections += 1
            e = explain(self.manifest, self.spec.name, where, dtype, axes, params)
            if e.chosen is None:  # never silent: once per signature, with the reasons
                warnings.warn(
                    f"{self.package}.{self.spec.name}: no kernel fits, running the reference\n"
                    + render_explanation(e),
                    RuntimeWarning,
                    stacklevel=4,
                )
            self.choices[key] = e.chosen
        return self.choices[key]

    # ---- execution ----------------------------------------------------------------------------

    def compute(self, *args: Any) -> list[torch.Tensor]:
        n = len(self.spec.inputs)
        inputs = [t.contiguous() for t in args[:n]]  # kernels were verified on contiguous tensors
        params = dict(zip(self.params, args[n:], strict=True))
        kernel = self.choose(inputs, params)
        if kernel is not None:
            return self.run_kernel(kernel, inputs)
        outputs = self.allocate(inputs)
        for out, value in zip(outputs, self.run_reference(inputs, params), strict=True):
            out.copy_(value)
        return outputs

    def run_kernel(self, kernel: Kernel, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """`kernel` on `inputs`, bypassing selection (numerics and bench check every kernel)."""
        outputs = self.allocate(inputs)
        self.module(f"kernels.{kernel.module}").run(*inputs, *outputs)
        return outputs

    def run_reference(self, inputs: Sequence[torch.Tensor], params: dict[str, Any]) -> list[torch.Tensor]:
        axes = axes_of(self.spec, [tuple(t.shape) for t in inputs])
        ref = self.module(f"references.{self.spec.reference}").reference(
            *inputs, **param_values(self.spec, axes, params)
        )
        return list(ref) if isinstance(ref, tuple | list) else [ref]

    def random_inputs(
        self, axes: dict[str, int], dtype: str, device: Any, generator: torch.Generator
    ) -> list[torch.Tensor]:
        """Standard normal inputs of the declared shapes at axis values `axes` (integer inputs:
        small non-negative values), for the package's numerics and bench tools."""
        names = {**self.spec.const_axes, **axes}
        inputs = []
        for decl in self.spec.inputs:
            shape = tuple(evaluate(d, names) for d in decl.shape)
            kind = getattr(torch, dtype if decl.dtype == "$dtype" else decl.dtype)
            if kind.is_floating_point:
                t = torch.randn(shape, generator=generator, dtype=torch.float32).to(kind)
            else:
                t = torch.randint(0, 8, shape, generator=generator).to(kind)
            inputs.append(t.to(device))
        return inputs

    def allocate(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        axes = axes_of(self.spec, [tuple(t.shape) for t in inputs])
        variant = self.variant(inputs)
        return [
            torch.empty(
                shape,
                dtype=getattr(torch, variant if decl.dtype == "$dtype" else decl.dtype),
                device=inputs[0].device,
            )
            for decl, shape in zip(self.spec.outputs, output_shapes(self.spec, axes), strict=True)
        ]

    def module(self, name: str) -> ModuleType:
        return importlib.import_module(f"{self.package}.{name}")

    # ---- torch.library ------------------------------------------------------------------------

    def _register(self) -> Any:
        args = [f"Tensor {t.name}" for t in self.spec.inputs]
        args += [f"{_SCHEMA_TYPES[type(v)]} {k}" for k, v in self.params.items()]
        outs = (
            "Tensor" if len(self.spec.outputs) == 1 else f"({', '.join(['Tensor'] * len(self.spec.outputs))})"
        )
        single = len(self.spec.outputs) == 1

        def impl(*args: Any) -> Any:
            outputs = self.compute(*args)
            return outputs[0] if single else tuple(outputs)

        def fake(*args: Any) -> Any:
            outputs = self.allocate(args[: len(self.spec.inputs)])
            return outputs[0] if single else tuple(outputs)

        op = torch.library.custom_op(
            f"{self.package}::{self.spec.name}",
            impl,
            mutates_args=(),
            schema=f"({', '.join(args)}) -> {outs}",
        )
        op.register_fake(fake)
        return op

    def _function(self) -> Callable[..., Any]:
        P = inspect.Parameter
        signature = inspect.Signature(
            [P(t.name, P.POSITIONAL_OR_KEYWORD) for t in self.spec.inputs]
            + [P(k, P.POSITIONAL_OR_KEYWORD, default=v) for k, v in self.params.items()]
        )

        def call(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return self.custom_op(*bound.args)

        call.__name__ = call.__qualname__ = self.spec.name
        call.__doc__ = f"{self.spec.description.strip()}\n\nKernel contract: {self.spec.entry}"
        call.__signature__ = signature  # type: ignore[attr-defined]
        return call


def load(package: str, package_dir: Path) -> dict[str, Operator]:
    """Every operator of the package, registered as custom ops, by name and alias."""
    manifest = Manifest.load(package_dir)
    interpret = os.environ.get(manifest.interpret_env) == "1"
    if interpret:  # before any kernel module is imported: @triton.jit reads it then
        os.environ["TRITON_INTERPRET"] = "1"
    operators: dict[str, Operator] = {}
    for spec in manifest.ops.values():
        op = Operator(package, manifest, spec, interpret)
        for name in [spec.name, *spec.aliases]:
            operators[name] = op
    return operators
