"""`python -m <package>.registry list|show|select`: the kernels of this package, and why a call on a
given platform and shape would run which one. `ksearch export` copies this file into the package as
registry.py; `ksearch registry` prints the same text through the same `select` module."""

from __future__ import annotations

import argparse
from pathlib import Path

from .select import Manifest, explain, parse_shape, platform_of, render_explanation, render_list, render_show


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.registry", description=__doc__)
    parser.add_argument("command", choices=["list", "show", "select"])
    parser.add_argument("--op", help="operator name (show, select)")
    parser.add_argument(
        "--device", help="capability: sm_90, sm_100, gfx942, gfx950, cpu (default: this machine)"
    )
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--shape", default="", help="axis values, e.g. M=64,N=4096")
    parser.add_argument("--interpret", action="store_true", help="on cpu: the Triton interpreter is on")
    args = parser.parse_args(argv)
    manifest = Manifest.load(Path(__file__).parent)
    if args.command == "list":
        print(render_list(manifest, args.op))
    elif args.op is None:
        parser.error(f"{args.command} needs --op")
    elif args.command == "show":
        print(render_show(manifest, args.op))
    else:
        platform = platform_of(args.device, args.interpret)
        print(render_explanation(explain(manifest, args.op, platform, args.dtype, parse_shape(args.shape))))


if __name__ == "__main__":
    main()
