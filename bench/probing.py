"""What probing for the server's version costs at connect time.

    python bench/probing.py [--trials 20]

For each server double and each way of choosing the dialect, starts a fresh
connection and times "run() started" -> "session connected" (the on-connected
hook), per trial; prints min / median / max. The floor of each row is the
direct connection to the same server in the same run (``--protocol`` fixed).
No assertions: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ankaios_agent.agent import dialects
from ankaios_agent.agent.connection import ServerConnection
from ankaios_agent.agent.dialects import WireDialect
from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import FromServerMessageV1
from ankaios_agent.agent.outbox import Outbox
from tests.server_double import ServerDouble
from tests.server_double_v1 import ServerDoubleV1

AUTO = (dialects.V1, dialects.V0_3)


async def _ignore(_msg: FromServerMessageV1) -> None:
    return None


async def _connect_once(address: str, probe: Sequence[WireDialect], name: str) -> float:
    connected = asyncio.Event()

    async def hook(_dialect: Dialect) -> None:
        connected.set()

    start = time.monotonic()
    connection = ServerConnection(address, name, Outbox(), _ignore, hook, dialects=probe)
    task = asyncio.create_task(connection.run())
    await asyncio.wait_for(connected.wait(), 30)
    elapsed = time.monotonic() - start
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return elapsed


def _row(label: str, times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"{label:50} min {min(ms):6.1f} ms  median {statistics.median(ms):6.1f} ms  max {max(ms):6.1f} ms"


async def main(trials: int) -> None:
    for server, direct in ((ServerDouble(), dialects.V0_3), (ServerDoubleV1(), dialects.V1)):
        await server.start()
        kind = type(server).__name__
        floor = [await _connect_once(server.address, (direct,), f"b{i}") for i in range(trials)]
        probed = [await _connect_once(server.address, AUTO, f"p{i}") for i in range(trials)]
        print(_row(f"{kind}: direct ({direct.label}) [floor]", floor))
        print(_row(f"{kind}: --protocol auto", probed))
        extra = statistics.median(probed) - statistics.median(floor)
        print(f"{'':50} probing adds {extra * 1000:+.1f} ms (median)")
        await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    asyncio.run(main(parser.parse_args().trials))
