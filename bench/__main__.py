"""`python -m bench`: parse the sizes, run the scenarios against one server, print
the figures as they come."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

import bench

from . import _report
from ._harness import Bench
from .cli import cli_start, tail_of_a_big_log
from .control import control_plane
from .fanout import fan_out
from .fleet import fleet_fan_out
from .init import init_cost
from .memory import memory
from .registration import registration
from .security import security_checks
from .start import start_rate
from .streaming import live_run, single_follower
from .waves import rss_after_waves

SCENARIOS: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "stream": single_follower,
    "live": live_run,
    "fanout": fan_out,
    "control": control_plane,
    "start": start_rate,
    "memory": memory,
    "cli": cli_start,
    "tail": tail_of_a_big_log,
    "registration": registration,
    "waves": rss_after_waves,
    "init": init_cost,
    "security": security_checks,
    "fleet": fleet_fan_out,
}


async def run(args: argparse.Namespace) -> None:
    """Make a PKI, start the server, run the chosen scenarios in the table's order;
    then write the figures (``--json``) and compare them (``--compare``)."""
    with tempfile.TemporaryDirectory(prefix="jobs-bench-") as tmp:
        b = Bench(args, Path(tmp))
        meta = _report.metadata(args)
        completed = False
        try:
            await b.start_server()
            assert b.state is not None
            print(
                f"jobs bench on {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
                f"state on {b.state.parent}; streaming and status figures: "
                + (f"medians of {args.repeat} runs" if args.repeat > 1 else "one run")
            )
            print(f"{'scenario':<46} {'figure':>12} {'unit':<8} {'ratio':>7}  baseline")
            for name in args.only or SCENARIOS:
                await SCENARIOS[name](b)
            completed = True
        finally:
            await b.stop_server()
            # Even a run that failed half-way keeps the figures it has (marked incomplete).
            this_run = _report.document(meta, b.rows, completed)
            if args.json is not None:
                _report.write(args.json, this_run)
    if args.compare:
        print()
        _report.compare(args.compare[0], this_run)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: which scenarios, and their sizes."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument(
        "--stream-mib", type=int, default=1024, help="bytes of the streaming scenarios (MiB)"
    )
    parser.add_argument(
        "--fanout-mib", type=int, default=8, help="bytes each fan-out follower receives (MiB)"
    )
    parser.add_argument("--followers", type=int, nargs="+", default=[100, 500])
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the streaming and status scenarios (median)"
    )
    parser.add_argument("--calls", type=int, default=20_000, help="status calls to time")
    parser.add_argument("--starts", type=int, default=100, help="jobs started per variant")
    parser.add_argument(
        "--finished", type=int, default=1000, help="finished jobs for the memory figure"
    )
    parser.add_argument("--idle-followers", type=int, default=500)
    parser.add_argument("--drift-calls", type=int, default=100_000)
    parser.add_argument("--waves", type=int, default=5)
    parser.add_argument("--wave-clients", type=int, default=500)
    parser.add_argument(
        "--fleet-hosts", type=int, nargs="+", default=[8, 16], help="servers of the fleet figures"
    )
    parser.add_argument(
        "--json",
        type=_report.writable,
        metavar="FILE",
        help="write every figure and the run's metadata (date, commit, python, kernel, "
        "arguments) to FILE as JSON",
    )
    parser.add_argument(
        "--compare",
        type=_report.load,
        nargs="+",
        metavar="FILE",
        help="print this run's figures and ratios next to those of FILE (a --json file); "
        "given two files, OLD NEW, compare those and run nothing",
    )
    args = parser.parse_args(argv)
    if args.compare and len(args.compare) > 2:
        parser.error("--compare takes OLD.json, or OLD.json NEW.json")
    return args


def main() -> None:
    """Run the suite on asyncio with uvloop, as the server and the CLI run (or only
    compare two runs)."""
    args = parse()
    if args.compare and len(args.compare) == 2:
        _report.compare(*args.compare)
        return
    anyio.run(run, args, backend="asyncio", backend_options={"use_uvloop": True})


if __name__ == "__main__":
    main()
