"""Run the server double by hand: ``python -m tests.server_double --config state.yaml --port 25551``.

It logs every message it receives and sends, and prints the state table
whenever it changes, so a person can watch an agent work against it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from tests.server_double.server import ServerDouble
from tests.server_double.state import StateError, load_state


def _table(server: ServerDouble) -> str:
    rows = [f"  {'WORKLOAD':20} {'AGENT':12} {'EXECUTION STATE':26} INFO"]
    for inst, state in sorted(server.states.items()):
        rows.append(f"  {inst.workload:20} {inst.agent:12} {state.display:26} {state.info}")
    return "\n".join(rows)


async def _serve(server: ServerDouble, port: int) -> None:
    await server.start(port)
    print(f"server double listening on {server.address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    last = ""
    while not stop.is_set():
        table = _table(server)
        if table != last:
            print(table, flush=True)
            last = table
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.server_double", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--config", "-c", type=Path, help="startup state YAML (apiVersion: v0.1, workloads: ...)"
    )
    parser.add_argument("--port", "-p", type=int, default=25551)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        desired = load_state(args.config) if args.config else None
    except (OSError, StateError) as err:
        print(f"server double: {err}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(ServerDouble(desired), args.port))
    except OSError as err:
        print(f"server double: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
