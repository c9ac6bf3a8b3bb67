"""The pieces of the trusted replay: what the worker records of a call, what the judge refuses to
replay, and what of a candidate's source the judge ever executes."""

import ast
from pathlib import Path

import pytest
import torch
import triton
import triton.language as tl

from ksearch.harness.judge import constexpr_params, dtype_size, kernel_module, kernel_source
from ksearch.harness.recorder import CallRecorder, recording
from ksearch.harness.trace import (
    Alloc,
    Choose,
    Copy,
    Fill,
    Launch,
    TensorArg,
    Trace,
    TraceError,
    View,
    check_trace,
)


@triton.jit
def _scale(x_ptr, out_ptr, n, factor, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=offs < n) * factor, mask=offs < n)


@triton.autotune(
    configs=[triton.Config({"BLOCK": 64}, num_warps=2), triton.Config({"BLOCK": 128}, num_warps=4)], key=["n"]
)
@triton.jit
def _scale_tuned(x_ptr, out_ptr, n, factor, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=offs < n) * factor, mask=offs < n)


def _record(fn, *tensors) -> Trace:
    recorder = CallRecorder()
    with recording(recorder) as watch:
        recorder.begin(list(tensors))
        with watch:
            fn(*tensors)
        return recorder.end()


def test_a_call_is_recorded_as_allocations_fills_copies_and_launches_with_nothing_run():
    x, out = torch.randn(4, 100), torch.full((4, 100), 7.0)

    def run(x, out):
        xt = x.t().contiguous().t()  # a copy: the judge must redo it
        scratch = torch.zeros(400)
        out.zero_()
        host = x.sum()  # torch compute: never replayed
        _scale[(triton.cdiv(400, 128),)](xt, scratch, 400, 2.0, BLOCK=128, num_warps=4)
        _scale[(4,)](scratch, out, 400, float(host), BLOCK=128)

    trace = _record(run, x, out)
    assert bool((out == 0).all())  # the host's fill ran; no kernel did (7.0 * anything never written)
    kinds = [type(s).__name__ for s in trace.steps]
    assert kinds == ["Alloc", "Copy", "Alloc", "Fill", "Launch", "Launch"], kinds
    copy_dst = trace.steps[0]
    assert isinstance(copy_dst, Alloc) and copy_dst.fill is None and copy_dst.buffer == 2
    assert trace.steps[1].src.buffer == 0 and trace.steps[1].dst.buffer == 2
    assert trace.steps[2].fill == 0 and trace.steps[2].buffer == 3  # torch.zeros
    assert trace.steps[3].dst.buffer == 1 and trace.steps[3].value == 0
    first, second = trace.steps[4], trace.steps[5]
    assert first.grid == (4, 1, 1) and first.options == {"num_warps": 4}
    assert first.args["x_ptr"].view.buffer == 2 and first.args["out_ptr"].view.buffer == 3
    assert first.args["factor"].value == 2.0 and first.args["BLOCK"].value == 128
    assert second.args["out_ptr"].view == View(
        buffer=1, offset=0, shape=(4, 100), stride=(100, 1), dtype="float32"
    )
    assert "sum" in trace.host_ops
    check_trace(trace, [1600, 1600], dtype_size, 1 << 20)


def test_an_autotuned_launch_is_recorded_with_one_alternative_per_config():
    x, out = torch.randn(256), torch.empty(256)
    trace = _record(
        lambda x, out: _scale_tuned[lambda m: (triton.cdiv(256, m["BLOCK"]),)](x, out, 256, 3.0), x, out
    )
    (choose,) = trace.steps
    assert isinstance(choose, Choose) and choose.kernel == "_scale_tuned"
    assert [(a.args["BLOCK"].value, a.grid[0], a.options["num_warps"]) for a in choose.alternatives] == [
        (64, 4, 2),
        (128, 2, 4),
    ]


def test_memory_the_call_did_not_allocate_is_fresh_scratch_of_unknown_content():
    pool = torch.randn(256)  # a module-level cache, say: its content must not reach the judge
    x, out = torch.randn(256), torch.empty(256)
    trace = _record(lambda x, out: _scale[(2,)](pool, out, 256, 1.0, BLOCK=128), x, out)
    alloc, launch = trace.steps
    assert isinstance(alloc, Alloc) and alloc.fill is None and alloc.nbytes == 1024
    assert launch.args["x_ptr"].view.buffer == alloc.buffer


def test_a_launch_argument_that_is_not_a_plain_value_stops_the_call():
    x, out = torch.randn(256), torch.empty(256)
    with pytest.raises(TypeError, match="a launch may pass"):
        _record(lambda x, out: _scale[(2,)](x, out, 256, object(), BLOCK=128), x, out)


def _launch(view: View, **options) -> Launch:
    return Launch(kernel="k", grid=(1, 1, 1), args={"p": TensorArg(view=view)}, options=options)


@pytest.mark.parametrize(
    "trace, why",
    [
        (
            Trace(
                n_job=1, steps=[_launch(View(buffer=0, offset=0, shape=(65,), stride=(1,), dtype="float32"))]
            ),
            "reaches",
        ),
        (
            Trace(
                n_job=1, steps=[_launch(View(buffer=0, offset=-4, shape=(2,), stride=(1,), dtype="float32"))]
            ),
            "reaches",
        ),
        (
            Trace(
                n_job=1,
                steps=[_launch(View(buffer=0, offset=0, shape=(2, 40), stride=(40, -1), dtype="float32"))],
            ),
            "reaches",
        ),
        (
            Trace(
                n_job=1, steps=[_launch(View(buffer=3, offset=0, shape=(1,), stride=(1,), dtype="float32"))]
            ),
            "never",
        ),
        (
            Trace(
                n_job=1, steps=[_launch(View(buffer=0, offset=2, shape=(1,), stride=(1,), dtype="float32"))]
            ),
            "reaches",
        ),
        (Trace(n_job=1, steps=[Alloc(buffer=1, nbytes=1 << 40)]), "scratch"),
        (
            Trace(
                n_job=1,
                steps=[
                    _launch(
                        View(buffer=0, offset=0, shape=(1,), stride=(1,), dtype="float32"),
                        launch_metadata="hook",
                    )
                ],
            ),
            "not a launch option",
        ),
        (
            Trace(
                n_job=1,
                steps=[
                    Copy(
                        dst=View(buffer=0, offset=0, shape=(1,), stride=(1,), dtype="float32"),
                        src=View(buffer=0, offset=0, shape=(1,), stride=(1,), dtype="object"),
                    )
                ],
            ),
            "dtype",
        ),
        (Trace(n_job=2, steps=[]), "call has 1"),
    ],
)
def test_the_judge_refuses_a_trace_that_reaches_outside_its_buffers(trace, why):
    with pytest.raises(TraceError, match=why):
        check_trace(trace, [256], dtype_size, 1 << 20)


def test_a_fill_inside_its_buffer_is_accepted():
    check_trace(
        Trace(
            n_job=1,
            steps=[Fill(dst=View(buffer=0, offset=4, shape=(63,), stride=(1,), dtype="float32"), value=0)],
        ),
        [256],
        dtype_size,
        0,
    )


SOURCE = """
import os
import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

open("/tmp/ksearch-judge-ran-host-code", "w").write("x")
BLOCK = tl.constexpr(128)
SHIFT = 3 * 4
CACHE = {}
EVIL = __import__("os").getpid()

def hook(*a):
    os.system("true")

@triton.autotune(configs=[triton.Config({"B": 64}, pre_hook=hook)], key=[])
@triton.jit(launch_metadata=hook, do_not_specialize=["n"])
def kernel(x_ptr, n, B: tl.constexpr = BLOCK):
    tl.store(x_ptr + tl.arange(0, B), tl.zeros((B,), tl.float32) + SHIFT)

@triton.jit
def bad_default(x_ptr, B: tl.constexpr = __import__("os").getpid()):
    pass

class Model(torch.nn.Module):
    pass

def run(x, out):
    kernel[(1,)](out, 1)
"""


@pytest.mark.parametrize(
    "body",
    [
        "    triton.runtime.build.compile_module_from_src(SRC, 'x')\n",  # builds C at compile time
        "    __import__('os').system('true')\n",
        "    n = x_ptr.__class__\n",
        "    open('/tmp/x', 'w')\n",
        "    helper(x_ptr)\n",  # a plain Python function: the code generator would call it
        "    tl.store(x_ptr, tl.load(x_ptr) + math.pi + N)\n",  # fine: Triton, math, a parameter
    ],
)
def test_a_kernel_body_that_names_anything_but_triton_is_never_compiled_by_the_judge(body):
    source = (
        "import triton\nimport triton.language as tl\nimport math\nSRC = 'x'\n"
        "def helper(p):\n    return p\n\n@triton.jit\ndef k(x_ptr, N):\n" + body
    )
    tree, dropped = kernel_source(source)
    kept = any(isinstance(s, ast.FunctionDef) and s.name == "k" for s in tree.body)
    assert kept == body.strip().startswith("tl.store"), dropped


def test_the_judge_executes_only_jit_definitions_imports_of_triton_and_constants():
    tree, dropped = kernel_source(SOURCE)
    text = ast.unparse(tree)
    assert "open(" not in text and "import os" not in text and "getpid" not in text and "torch" not in text
    assert "hook" not in text and "autotune" not in text and "launch_metadata" not in text
    assert "do_not_specialize=['n']" in text  # what shapes compilation is kept
    assert "BLOCK = tl.constexpr(128)" in text and "SHIFT = 3 * 4" in text
    assert {"CACHE", "EVIL"} <= set(dropped) and any(d.startswith("bad_default") for d in dropped)
    assert "def run" not in text and "class Model" not in text
    marker = Path("/tmp/ksearch-judge-ran-host-code")
    marker.unlink(missing_ok=True)
    module, _ = kernel_module(SOURCE, "/tmp/ksearch-test-candidate.py")  # runs nothing of the host code
    assert not marker.exists() and "run" not in vars(module) and "hook" not in vars(module)
    assert constexpr_params(module.kernel) == {"x_ptr": False, "n": False, "B": True}


def test_an_empty_view_is_recorded_as_nothing_written():
    x, out = torch.randn(4, 64), torch.empty(4, 64)

    def run(x, out):
        out.narrow(1, 64, 0).zero_()  # a pad of width 0 when N is already a power of two
        _scale[(2,)](x, out, 256, 1.0, BLOCK=128)

    trace = _record(run, x, out)
    assert [type(s).__name__ for s in trace.steps] == ["Launch"]
    check_trace(trace, [1024, 1024], dtype_size, 0)


def test_the_arena_bytes_outside_a_jobs_tensors_are_the_gaps_and_the_tail():
    from ksearch.harness.arena import outside

    base = torch.arange(4096, dtype=torch.int32).to(torch.uint8)
    refs = [
        {"offset": 512, "shape": [3, 10], "dtype": "float16"},  # 60 bytes: a gap to 1024
        {"offset": 0, "shape": [128], "dtype": "float32"},  # fills 0..512 exactly: no gap
        {"offset": 1024, "shape": [2], "dtype": "int64"},
    ]  # then the tail from 1040
    spans = outside(base, refs)
    assert [(s.data_ptr() - base.data_ptr(), s.numel()) for s in spans] == [(572, 452), (1040, 3056)]
