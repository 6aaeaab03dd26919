"""Run the v1.0.1 server double by hand.

``python -m tests.server_double_v1 --port 25551 --state state.yaml`` serves plain
HTTP/2 (start the agent with ``--insecure``); with ``--ca``, ``--crt`` and
``--key`` it serves mutual TLS. It logs what it receives and sends and prints
the state table whenever it changes, so a person can watch an agent work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from tests.server_double_v1.server import ServerDoubleV1, TlsMaterial
from tests.server_double_v1.state import StateError, load_state


def _table(server: ServerDoubleV1) -> str:
    rows = [f"  {'WORKLOAD':20} {'AGENT':12} {'EXECUTION STATE':26} INFO"]
    for inst, state in sorted(server.states.items()):
        rows.append(f"  {inst.workload:20} {inst.agent:12} {state.display:26} {state.info}")
    return "\n".join(rows)


async def _serve(server: ServerDoubleV1, port: int) -> None:
    await server.start(port)
    print(f"server double v1.0.1 listening on {server.url}", flush=True)
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
        prog="python -m tests.server_double_v1", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--state", "-c", type=Path, help="startup manifest (apiVersion: v1, workloads: ...)")
    parser.add_argument("--port", "-p", type=int, default=25551, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ca", type=Path, help="CA certificate (PEM) that signs the agents' certificates")
    parser.add_argument("--crt", type=Path, help="server certificate (PEM, DNS name ank-server)")
    parser.add_argument("--key", type=Path, help="server private key (PEM)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    tls_files = (args.ca, args.crt, args.key)
    if any(tls_files) and not all(tls_files):
        print("server double: give all of --ca, --crt and --key, or none (plain HTTP/2)", file=sys.stderr)
        return 2
    try:
        desired = load_state(args.state) if args.state else None
        tls = TlsMaterial(*(p.read_bytes() for p in tls_files)) if all(tls_files) else None
    except (OSError, StateError) as err:
        print(f"server double: {err}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(ServerDoubleV1(desired, host=args.host, tls=tls), args.port))
    except OSError as err:
        print(f"server double: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
