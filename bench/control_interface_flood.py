"""Benchmark: the agent's memory while one workload floods its control interface.

The agent side runs in this process: a ControlInterfaceHost whose requests go into
the agent's real Outbox, wired as the agent wires them, with the server away
(nobody takes messages out of the outbox, as during a long disconnect). Two
phases of ``--seconds`` each:

* quiet:  two workloads' control interfaces exist, nothing is written;
* flood:  a second process writes tiny CompleteStateRequests into the same
          ``output`` as fast as the pipe takes them, while a second, well-behaved
          workload sends one request per second.

Printed: this process's RSS at the start, middle and end of each phase side by
side, the outbox length, how many requests the relay read from the flood, and
how long the well-behaved workload's requests took to reach the outbox.

Run from the repository root: ``/work/venv/bin/python -m bench.control_interface_flood``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ankaios_agent.agent.model import InstanceName, Request, ToServerMessageV1
from ankaios_agent.agent.outbox import Outbox
from ankaios_agent.control_interface import ControlInterfaceHost
from ankaios_agent.control_interface.framing import frame
from ankaios_agent.proto import ankaios_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def tiny_request(request_id: str) -> bytes:
    request = pb.Request(requestId=request_id, completeStateRequest=pb.CompleteStateRequest())
    return frame(pb.ToServer(request=request).SerializeToString())


def run_flooder(folder: Path) -> None:
    """Blocking writer: the same tiny request, forever (until killed)."""
    fd = os.open(folder / "output", os.O_WRONLY)
    chunk = tiny_request("f") * 512
    while True:
        os.write(fd, chunk)


class TimedOutbox(Outbox):
    """The real outbox, noting when each request of the well-behaved workload arrives."""

    def __init__(self) -> None:
        super().__init__(warn_above=10**9)
        self.arrivals: dict[str, float] = {}

    def send(self, msg: ToServerMessageV1) -> None:
        if isinstance(msg, Request) and msg.request_id.startswith("polite@"):
            self.arrivals[msg.request_id] = time.perf_counter()
        super().send(msg)


async def sample_phase(
    seconds: float, polite: Path | None, outbox: TimedOutbox
) -> tuple[list[int], list[float]]:
    samples = [rss_kib()]
    delays: list[float] = []
    fd = os.open(polite / "output", os.O_WRONLY | os.O_NONBLOCK) if polite is not None else None
    start = time.perf_counter()
    tick = 0
    while (elapsed := time.perf_counter() - start) < seconds:
        if fd is not None:
            request_id = f"p{tick}"
            sent = time.perf_counter()
            os.write(fd, tiny_request(request_id))
            while f"polite@{request_id}" not in outbox.arrivals:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            delays.append(outbox.arrivals[f"polite@{request_id}"] - sent)
        tick += 1
        if len(samples) == 1 and elapsed >= seconds / 2:
            samples.append(rss_kib())
        await asyncio.sleep(1.0)
    samples.append(rss_kib())
    if fd is not None:
        os.close(fd)
    return samples, delays


async def run(seconds: float) -> int:
    outbox = TimedOutbox()
    with tempfile.TemporaryDirectory(prefix="ank-flood-") as tmp:
        host = ControlInterfaceHost(Path(tmp) / "agent_A_io", outbox.send, backlog=outbox.queued_requests)
        flood = await host.ensure(InstanceName("flood", "agent_A", "0" * 64))
        polite = await host.ensure(InstanceName("polite", "agent_A", "1" * 64))
        quiet, _ = await sample_phase(seconds, None, outbox)
        quiet_len = len(outbox)
        flooder = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.control_interface_flood",
            "--role", "flooder", "--folder", str(flood), cwd=ROOT,
        )  # fmt: skip
        try:
            flooded, delays = await sample_phase(seconds, polite, outbox)
        finally:
            flooder.kill()
            await flooder.wait()
        counters = host.counters("flood")
        await host.close()
    assert counters is not None
    print(f"agent RSS over {seconds:.0f} s, server away (KiB)\n")
    print(f"{'phase':34} {'start':>8} {'middle':>8} {'end':>8} {'growth':>8}")
    for name, samples in (("without flooding (floor)", quiet), ("one workload flooding", flooded)):
        print(f"{name:34} {samples[0]:8d} {samples[1]:8d} {samples[2]:8d} {samples[2] - samples[0]:8d}")
    print(
        f"\noutbox: {quiet_len} message(s) after the quiet phase, {len(outbox)} after the flood "
        f"(relay read pauses: {counters.read_pauses}, forwarded: {counters.requests_forwarded}, "
        f"given up waiting: {counters.requests_unanswered})"
    )
    if delays:
        print(
            f"well-behaved workload during the flood: {len(delays)} requests, time to reach the outbox "
            f"median {statistics.median(delays) * 1000:.2f} ms, max {max(delays) * 1000:.2f} ms "
            f"(target: under 1000 ms)"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", choices=("agent", "flooder"), default="agent")
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.role == "flooder":
        run_flooder(args.folder)
        return 0
    return asyncio.run(run(args.seconds))


if __name__ == "__main__":
    raise SystemExit(main())
