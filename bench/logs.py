"""Benchmark: log throughput through the runtime log stream and the collector; loop lag under 20 follows.

Prints figures, asserts nothing. Run from the repository root:

    python -m bench.logs [--lines 300000] [--rounds 3] [--follows 20] [--lag-seconds 10]

It starts its own private Podman service (tests/support/podman_env.py).

1. Throughput, follow mode. A container writes ``--lines`` lines of 100 bytes
   as fast as ``yes | head`` can, on a signal. Two readers follow the same
   container at the same time: ours (``PodmanRuntime.logs`` → ``LogCollector``
   → a counting sink, with the 2 MiB packing) and the floor, podman-py's own
   ``Container.logs(stream=True, follow=True)`` read in a plain thread. Each
   reports lines/s and MiB/s from the signal to its end of log. Then both read
   the finished container's whole log again, one after the other, without
   ``follow``: the pure read rate. Ratio ours/floor; goal >= 0.8. (Podman 4.3
   ends a follow as soon as the container stops, often long before the end of
   a fast log; ours then reads the rest, podman-py's follow does not, so the
   live figures of the floor cover only part of the log.)
2. Event-loop lag: ``--follows`` containers each write a burst of lines every
   100 ms while one collector follows all of them (``--requests`` requests per
   container); a probe task sleeps 5 ms and records how late it wakes. The
   same probe without any follows is the floor. Goal p99 <= 20 ms.

The sink is the seam where the v1 server double can be put in later: anything
with ``async def put(msg)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import threading
import time
import uuid
from dataclasses import dataclass

from podman import PodmanClient

from ankaios_agent.agent.log_collector import LogCollector, LogMessage, LogTarget, Unavailable
from ankaios_agent.agent.model import InstanceName, LogEntries, LogsRequest, LogsStopped, WorkloadSpec
from ankaios_agent.agent.ports import CreateRequest
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.runtime import PodmanRuntime
from tests.support.podman_env import PodmanEnv, podman_environment

LINE = "x" * 99  # 100 bytes with the line feed
MIB = 1024 * 1024


@dataclass
class CountingSink:
    """Counts what the collector delivers; ``done`` is set when every expected stop arrived."""

    expected_stops: int
    lines: int = 0
    chars: int = 0
    stops: int = 0
    messages: int = 0
    finished_at: float = 0.0

    def __post_init__(self) -> None:
        self.done = asyncio.Event()

    async def put(self, msg: LogMessage) -> None:
        self.messages += 1
        if isinstance(msg, LogEntries):
            self.lines += len(msg.entries)
            self.chars += sum(len(e.message) + 1 for e in msg.entries)
        elif isinstance(msg, LogsStopped):
            self.stops += 1
            if self.stops >= self.expected_stops:
                self.finished_at = time.perf_counter()
                self.done.set()


def spec(env: PodmanEnv, instance: InstanceName, script: str) -> WorkloadSpec:
    config = (
        f"image: {env.image}\ncommandOptions: ['--network', 'none']\ncommandArgs: ['sh', '-c', {script!r}]\n"
    )
    return WorkloadSpec(instance, "podman", config)


def floor_read(
    url: str, name: str, result: dict[str, float], started: threading.Event, follow: bool = True
) -> None:
    """podman-py straight from the REST endpoint: count lines and bytes of every frame."""
    with PodmanClient(base_url=url) as client:
        container = client.containers.get(name)
        frames = container.logs(stream=True, follow=follow)
        assert not isinstance(frames, bytes), "stream=True yields the log frame by frame"
        started.set()
        lines = size = 0
        for frame in frames:
            lines += frame.count(b"\n")
            size += len(frame)
        result.update(lines=lines, bytes=size, finished_at=time.perf_counter())


def collector_for(runtime: PodmanRuntime, sink: CountingSink, *instances: InstanceName) -> LogCollector:
    table = {i.workload: i for i in instances}

    def lookup(name: str) -> LogTarget | Unavailable:
        found = table.get(name)
        return LogTarget(found, runtime) if found else Unavailable("unknown")

    return LogCollector(lookup, sink)


def _rate(lines: float, size: float, seconds: float) -> str:
    rate = f"{lines / seconds:>10.0f} lines/s {size / MIB / seconds:>7.1f} MiB/s"
    return f"{rate} ({lines:.0f} lines, {seconds:.2f} s)"


async def throughput(env: PodmanEnv, runtime: PodmanRuntime, agent: str, lines: int, rounds: int) -> None:
    print(f"\n== throughput: {lines} lines of 100 bytes, follow mode, {rounds} rounds ==")
    live_ratios: list[float] = []
    replay_ratios: list[float] = []
    for n in range(rounds):
        instance = InstanceName(f"writer{n}", agent, uuid.uuid4().hex[:8])
        script = f"trap 'yes {LINE} | head -n {lines}; exit 0' USR1; sleep 600 & wait"
        await runtime.create(CreateRequest(spec(env, instance, script)))

        sink = CountingSink(expected_stops=1)
        collector = collector_for(runtime, sink, instance)
        collector.start(LogsRequest(f"bench@{n}", (instance,), follow=True))
        floor: dict[str, float] = {}
        started = threading.Event()
        thread = threading.Thread(target=floor_read, args=(env.socket_url, str(instance), floor, started))
        thread.start()
        await asyncio.to_thread(started.wait, 30)
        await asyncio.sleep(0.5)  # both readers are attached before the first line
        t0 = time.perf_counter()
        env.podman("kill", "--signal", "USR1", str(instance))
        await asyncio.wait_for(sink.done.wait(), 300)
        await asyncio.to_thread(thread.join, 300)
        ours_s, floor_s = sink.finished_at - t0, floor["finished_at"] - t0
        print(f"live   ours : {_rate(sink.lines, sink.chars, ours_s)}  in {sink.messages} messages")
        print(f"live   floor: {_rate(floor['lines'], floor['bytes'], floor_s)}  (Podman ended it early)")
        live_ratios.append((sink.lines / ours_s) / (floor["lines"] / floor_s))

        # The finished log read again, each reader alone and without follow (Podman 4.3 ends a
        # follow of a stopped container before the end of its log).
        sink = CountingSink(expected_stops=1)
        collector = collector_for(runtime, sink, instance)
        t0 = time.perf_counter()
        collector.start(LogsRequest(f"bench-replay@{n}", (instance,)))
        await asyncio.wait_for(sink.done.wait(), 300)
        ours_s = sink.finished_at - t0
        floor = {}
        started = threading.Event()
        t0 = time.perf_counter()
        await asyncio.to_thread(floor_read, env.socket_url, str(instance), floor, started, False)
        floor_s = floor["finished_at"] - t0
        print(f"replay ours : {_rate(sink.lines, sink.chars, ours_s)}  in {sink.messages} messages")
        print(f"replay floor: {_rate(floor['lines'], floor['bytes'], floor_s)}")
        replay_ratios.append((sink.lines / ours_s) / (floor["lines"] / floor_s))
        await runtime.delete(instance)
    print(
        f"ratio ours/floor (lines/s), median of {rounds}: whole log {statistics.median(replay_ratios):.2f} "
        f"(goal >= 0.80); live {statistics.median(live_ratios):.2f} (the floor's follow stops early)"
    )


async def probe_lag(seconds: float, period: float = 0.005) -> list[float]:
    """How late (ms) a task wakes from a ``period`` sleep, for ``seconds``."""
    lags: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        before = time.perf_counter()
        await asyncio.sleep(period)
        lags.append((time.perf_counter() - before - period) * 1000)
    return lags


def _lag_line(label: str, lags: list[float]) -> str:
    ordered = sorted(lags)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{label:>42}: median {statistics.median(ordered):5.2f} ms  p99 {p99:6.2f} ms  "
        f"max {ordered[-1]:6.1f} ms"
    )


async def loop_lag(
    env: PodmanEnv,
    runtime: PodmanRuntime,
    agent: str,
    *,
    follows: int,
    requests: int,
    seconds: float,
    burst: int,
) -> None:
    print(
        f"\n== event-loop lag: {follows} containers x {requests} follow requests, "
        f"each writing {burst} lines every 100 ms, {seconds:.0f} s =="
    )
    idle = await probe_lag(min(seconds, 5.0))
    instances = [InstanceName(f"busy{n}", agent, uuid.uuid4().hex[:8]) for n in range(follows)]
    script = f"while :; do yes {LINE} | head -n {burst}; sleep 0.1; done"
    for instance in instances:
        await runtime.create(CreateRequest(spec(env, instance, script)))
    sink = CountingSink(expected_stops=follows * requests)
    collector = collector_for(runtime, sink, *instances)
    for r in range(requests):
        collector.start(LogsRequest(f"lag@{r}", tuple(instances), follow=True))
    await asyncio.sleep(1.0)
    lines_before, t0 = sink.lines, time.perf_counter()
    busy = await probe_lag(seconds)
    rate = (sink.lines - lines_before) / (time.perf_counter() - t0)
    await collector.stop_all()
    print(_lag_line("floor: probe alone", idle))
    print(_lag_line(f"with {follows * requests} follows", busy))
    print(f"{'delivered':>42}: {rate:,.0f} lines/s in total  (goal p99 <= 20 ms)")
    for instance in instances:
        await runtime.delete(instance)


async def main(args: argparse.Namespace) -> None:
    with podman_environment() as env:
        agent = f"bench{uuid.uuid4().hex[:6]}"
        runtime = PodmanRuntime(PodmanConnection(env.socket_url), agent)
        try:
            await throughput(env, runtime, agent, args.lines, args.rounds)
            await loop_lag(
                env,
                runtime,
                agent,
                follows=args.follows,
                requests=args.requests,
                seconds=args.lag_seconds,
                burst=args.burst,
            )
        finally:
            await runtime.close()
            env.remove_by_label(f"agent={agent}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--follows", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2, help="follow requests per container")
    parser.add_argument("--burst", type=int, default=200, help="lines per container per 100 ms")
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
