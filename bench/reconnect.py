"""How long the agent's connection needs to be back after the server returns.

    python bench/reconnect.py [--trials 10] [--down 10]

Stops the server double for ``--down`` seconds, starts it again on the same
port, and prints the time from "listening again" to "agent's hello received",
per trial and as min / median / max. No assertions: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ankaios_agent.agent.connection import ServerConnection
from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import FromServerMessageV1
from ankaios_agent.agent.outbox import Outbox
from tests.server_double import ServerDouble


async def _ignore(_msg: FromServerMessageV1) -> None:
    return None


async def _nothing(_dialect: Dialect) -> None:
    return None


async def main(trials: int, down: float) -> None:
    server = ServerDouble()
    await server.start()
    connection = ServerConnection(server.address, "bench_agent", Outbox(), _ignore, _nothing)
    task = asyncio.create_task(connection.run())
    await server.wait_for_agent("bench_agent")
    delays = []
    for trial in range(trials):
        port = server.port
        await server.stop()
        await asyncio.sleep(down)
        await server.start(port)
        back = time.monotonic()
        await server.wait_for_agent("bench_agent", timeout=30)
        delays.append(time.monotonic() - back)
        print(f"trial {trial + 1}: reconnected {delays[-1]:.3f} s after the server was back", flush=True)
    print(
        f"down {down:.1f} s, {trials} trials: min {min(delays):.3f} s, "
        f"median {statistics.median(delays):.3f} s, max {max(delays):.3f} s"
    )
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--down", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(main(args.trials, args.down))
