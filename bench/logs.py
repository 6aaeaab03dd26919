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

3. End to end: the whole agent (``run_agent`` with the production assembly)
   connected over gRPC on loopback to the v1.0.1 server double, which plays
   ``ank logs``; the containers are created through the double's desired
   state. Throughput as in 1 (live follow and the finished log read again),
   counted where the double receives the agent's log answers, beside
   podman-py reading the same container from Podman's REST endpoint in the same
   run; ratio goal >= 0.8. Then ``--follows`` follow requests on busy
   containers while a probe inside the agent's process measures the lag of
   the agent's loop (the agent runs as its own process with the probe beside
   it, so the double's work is not charged to it; the same probe in the
   bench's own loop, with the double, is printed too); goal p99 <= 20 ms.
   Sections 2 and 3 also print the probe while the containers are busy but
   nothing follows them: the share of the lag that the machine's load (Podman,
   conmon, the writers) causes without the agent reading anything.
   Meanwhile another workload is created: its Running state has to reach the
   double while the follows run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from podman import PodmanClient

from ankaios_agent.agent.app import AppTimings, run_agent
from ankaios_agent.agent.config import parse_args
from ankaios_agent.agent.log_collector import LogCollector, LogMessage, LogTarget, Unavailable
from ankaios_agent.agent.model import InstanceName, LogEntries, LogsRequest, LogsStopped, WorkloadSpec
from ankaios_agent.agent.ports import CreateRequest
from ankaios_agent.agent.wiring import assemble
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.runtime import PodmanRuntime
from tests.server_double_v1 import ServerDoubleV1
from tests.server_double_v1.state import instance_of
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
    await asyncio.sleep(1.0)
    unfollowed = await probe_lag(min(seconds, 5.0))
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
    print(_lag_line("floor: containers busy, no follow", unfollowed))
    print(_lag_line(f"with {follows * requests} follows", busy))
    print(f"{'delivered':>42}: {rate:,.0f} lines/s in total  (goal p99 <= 20 ms)")
    for instance in instances:
        await runtime.delete(instance)


# --- end to end through the agent and the v1.0.1 double ------------------------------------------


def _workload_yaml(env: PodmanEnv, name: str, agent: str, script: str) -> str:
    return (
        f"  {name}:\n    runtime: podman\n    agent: {agent}\n    runtimeConfig: |\n"
        f"      image: {env.image}\n      commandOptions: ['--network', 'none']\n"
        f"      commandArgs: ['sh', '-c', {script!r}]\n"
    )


def _name_of(server: ServerDoubleV1, workload: str) -> base.WorkloadInstanceName:
    found = instance_of(workload, server.rendered_desired.workloads.workloads[workload])
    return base.WorkloadInstanceName(workloadName=found.workload, agentName=found.agent, id=found.id)


def _container_of(server: ServerDoubleV1, workload: str) -> str:
    found = instance_of(workload, server.rendered_desired.workloads.workloads[workload])
    return f"{found.workload}.{found.id}.{found.agent}"


class _Answers:
    """What the double received for one log request: lines, text bytes, stop responses."""

    def __init__(self, server: ServerDoubleV1, request_id: str) -> None:
        self._server = server
        self._rid = request_id
        self._seen = 0
        self.lines = self.chars = self.stops = 0

    def update(self) -> None:
        responses = self._server.log_responses.get(self._rid, [])
        for response in responses[self._seen :]:
            kind = response.WhichOneof("ResponseContent")
            if kind == "logEntriesResponse":
                entries = response.logEntriesResponse.logEntries
                self.lines += len(entries)
                self.chars += sum(len(e.message) + 1 for e in entries)
            elif kind == "logsStopResponse":
                self.stops += 1
        self._seen = len(responses)


async def _answered(server: ServerDoubleV1, answers: _Answers, stops: int = 1) -> float:
    def done() -> bool:
        answers.update()
        return answers.stops >= stops

    await server.wait_until(done, timeout=600)
    return time.perf_counter()


async def _apply(server: ServerDoubleV1, agent: str, yaml: str, *names: str) -> None:
    await server.apply_manifest(f"apiVersion: v0.1\nworkloads:\n{yaml}")
    for name in names:
        await server.wait_for_state(name, "Running(Ok)", timeout=120)


async def _agent_with_probe(argv: list[str]) -> int:
    """The agent as a process of its own, with the lag probe in its loop: it measures
    ``--lag-seconds`` from each SIGUSR1 on and prints the lags (ms) as one JSON line on stdout."""
    seconds = float(os.environ["BENCH_LAG_SECONDS"])
    loop = asyncio.get_running_loop()
    go = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, go.set)

    async def probe() -> None:
        while True:
            await go.wait()
            go.clear()
            lags = await probe_lag(seconds)
            print(json.dumps(lags), flush=True)

    task = asyncio.create_task(probe())
    try:
        return await run_agent(parse_args(argv, {}), assemble, timings=AppTimings())
    finally:
        task.cancel()


async def _spawn_agent(argv: list[str], *, probe_seconds: float | None = None) -> asyncio.subprocess.Process:
    probe = probe_seconds is not None
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *(("-m", "bench.logs", "--agent-with-probe") if probe else ("-m", "ankaios_agent")),
        *argv,
        "--log-level",
        "warning",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if probe else None,
        env={**os.environ, "BENCH_LAG_SECONDS": str(probe_seconds or 0)},
    )


async def _stopped(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), 10)


async def end_to_end(env: PodmanEnv, args: argparse.Namespace) -> None:
    """The agent as its own process (as on a device: the double's work is not charged to the
    agent's loop): throughput, then loop lag measured by a probe inside the agent's process."""
    agent = f"bench{uuid.uuid4().hex[:6]}"
    server = ServerDoubleV1()
    await server.start()
    folder = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    (folder / f"{agent}_io").mkdir()
    argv = ["-n", agent, "-s", server.address, "-r", str(folder), "--podman-socket", env.socket_url]
    try:
        process = await _spawn_agent(argv)
        try:
            await server.wait_for_agent(agent, timeout=60)
            await _e2e_throughput(env, server, agent, args.lines, args.rounds)
        finally:
            await _stopped(process)
        process = await _spawn_agent(argv, probe_seconds=args.lag_seconds)
        try:
            await server.wait_for_agent(agent, timeout=60)
            await _e2e_lag(env, server, agent, args, process)
        finally:
            await _stopped(process)
    finally:
        await server.stop()
        env.remove_by_label(f"agent={agent}")


async def _e2e_throughput(
    env: PodmanEnv, server: ServerDoubleV1, agent: str, lines: int, rounds: int
) -> None:
    print(
        f"\n== end to end (agent process -> gRPC -> v1.0.1 double): {lines} lines of 100 bytes, "
        f"{rounds} rounds =="
    )
    live_ratios: list[float] = []
    replay_ratios: list[float] = []
    for n in range(rounds):
        name = f"e2e-writer{n}"
        script = f"trap 'yes {LINE} | head -n {lines}; exit 0' USR1; sleep 600 & wait"
        await _apply(server, agent, _workload_yaml(env, name, agent, script), name)
        container = _container_of(server, name)
        answers = _Answers(server, await server.request_logs([_name_of(server, name)], follow=True))
        floor: dict[str, float] = {}
        started = threading.Event()
        thread = threading.Thread(target=floor_read, args=(env.socket_url, container, floor, started))
        thread.start()
        await asyncio.to_thread(started.wait, 30)
        await asyncio.sleep(0.5)  # both readers are attached before the first line
        t0 = time.perf_counter()
        env.podman("kill", "--signal", "USR1", container)
        ours_s = await _answered(server, answers) - t0
        await asyncio.to_thread(thread.join, 300)
        floor_s = floor["finished_at"] - t0
        print(f"live   agent: {_rate(answers.lines, answers.chars, ours_s)}")
        print(f"live   floor: {_rate(floor['lines'], floor['bytes'], floor_s)}  (Podman ended it early)")
        live_ratios.append((answers.lines / ours_s) / (floor["lines"] / floor_s))

        t0 = time.perf_counter()
        answers = _Answers(server, await server.request_logs([_name_of(server, name)]))
        ours_s = await _answered(server, answers) - t0
        floor = {}
        t0 = time.perf_counter()
        await asyncio.to_thread(floor_read, env.socket_url, container, floor, threading.Event(), False)
        floor_s = floor["finished_at"] - t0
        print(f"replay agent: {_rate(answers.lines, answers.chars, ours_s)}")
        print(f"replay floor: {_rate(floor['lines'], floor['bytes'], floor_s)}")
        replay_ratios.append((answers.lines / ours_s) / (floor["lines"] / floor_s))
        server.log_responses.clear()
        await server.delete_workload(name)
        await server.wait_until(lambda name=name: not server.state_of(name), timeout=120)  # type: ignore[misc]
    print(
        f"ratio agent/floor (lines/s), median of {rounds}: whole log {statistics.median(replay_ratios):.2f} "
        f"(goal >= 0.80); live {statistics.median(live_ratios):.2f} (the floor's follow stops early)"
    )


async def _e2e_lag(
    env: PodmanEnv,
    server: ServerDoubleV1,
    agent: str,
    args: argparse.Namespace,
    process: asyncio.subprocess.Process,
) -> None:
    follows = args.follows
    print(
        f"\n== end to end event-loop lag: {follows} follow requests through the agent to the double, "
        f"each container writing {args.burst} lines every 100 ms, {args.lag_seconds:.0f} s =="
    )
    idle = await probe_lag(min(args.lag_seconds, 5.0))
    containers = max(1, follows // 2)
    script = f"while :; do yes {LINE} | head -n {args.burst}; sleep 0.1; done"
    names = [f"e2e-busy{n}" for n in range(containers)]
    await _apply(server, agent, "".join(_workload_yaml(env, n, agent, script) for n in names), *names)
    assert process.stdout is not None, "the probing agent's stdout is a pipe"
    process.send_signal(signal.SIGUSR1)
    unfollowed = json.loads(await asyncio.wait_for(process.stdout.readline(), args.lag_seconds + 30))
    answers = [
        _Answers(server, await server.request_logs([_name_of(server, names[i % containers])], follow=True))
        for i in range(follows)
    ]
    await asyncio.sleep(1.0)
    for a in answers:
        a.update()
    before, t0 = sum(a.lines for a in answers), time.perf_counter()
    process.send_signal(signal.SIGUSR1)
    probe = asyncio.create_task(probe_lag(args.lag_seconds))
    await asyncio.sleep(args.lag_seconds / 2)
    other = "e2e-latecomer"
    asked = time.perf_counter()
    await _apply(server, agent, _workload_yaml(env, other, agent, "sleep 600"), other)
    state_s = time.perf_counter() - asked
    busy = await probe
    for a in answers:
        a.update()
    rate = (sum(a.lines for a in answers) - before) / (time.perf_counter() - t0)
    still = sum(1 for a in answers if a.stops == 0)
    in_agent = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
    print(_lag_line("floor: probe alone (bench)", idle))
    print(_lag_line("floor: containers busy, no follow (agent)", unfollowed))
    print(_lag_line(f"with {follows} follows, agent's loop", in_agent))
    print(_lag_line("same time, the double's loop", busy))
    print(f"{'delivered to the double':>42}: {rate:,.0f} lines/s in total  (goal p99 <= 20 ms)")
    print(
        f"{'new workload Running(Ok) at the double':>42}: {state_s:.2f} s after the apply, "
        f"{still} follows still running"
    )
    server.log_responses.clear()


async def main(args: argparse.Namespace) -> None:
    with podman_environment() as env:
        if args.only_end_to_end:
            await end_to_end(env, args)
            return
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
        await end_to_end(env, args)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--agent-with-probe"]:
        # python -m bench.logs --agent-with-probe <agent arguments> (BENCH_LAG_SECONDS in the environment)
        sys.exit(asyncio.run(_agent_with_probe(sys.argv[2:])))
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--follows", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2, help="follow requests per container")
    parser.add_argument("--burst", type=int, default=200, help="lines per container per 100 ms")
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument("--only-end-to-end", action="store_true", help="only section 3")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
