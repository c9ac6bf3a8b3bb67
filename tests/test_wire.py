"""The evaluator's messages: plain data read at C speed, and no reply can run code in the parent."""

import pickle

import pytest
import torch

from ksearch.harness import wire


class _RunsCode:
    def __reduce__(self):
        return (print, ("the parent ran a worker's code",))


def test_plain_data_takes_the_fast_path_and_round_trips():
    msg = {"replays": [{"id": 3, "seconds": 0.25, "error": None, "args": (1, 2)}], "ok": True, "b": b"\x00"}
    data = wire.encode(msg)
    assert data[:1] == b"P"
    assert wire.decode(data) == msg


def test_tensors_travel_by_value_through_torch():
    msg = {"buffers": [torch.arange(6, dtype=torch.float16).reshape(2, 3)], "dtype": torch.float32}
    data = wire.encode(msg)
    assert data[:1] == b"T"
    back = wire.decode(data)
    assert torch.equal(back["buffers"][0], msg["buffers"][0]) and back["dtype"] == torch.float32


@pytest.mark.parametrize("tag", [b"P", b"T"])
def test_a_reply_that_names_a_callable_is_refused_unrun(tag, capsys):
    forged = tag + pickle.dumps({"reply": _RunsCode()})
    with pytest.raises(Exception, match="print|builtins|Unsupported|global"):
        wire.decode(forged)
    assert "ran a worker's code" not in capsys.readouterr().out


@pytest.mark.parametrize("data", [b"", b"X123", b"P" + pickle.dumps([1, 2]), b"P" + b"\x80\x05junk"])
def test_anything_but_a_dict_message_is_refused(data):
    with pytest.raises(Exception):  # noqa: B017  any error: the sandbox reports the reply unreadable
        wire.decode(data)
