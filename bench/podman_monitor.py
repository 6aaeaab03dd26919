"""Benchmark: event-driven podman monitor vs an emulation of the reference's polling.

Prints figures, asserts nothing. Run from the repository root:

    python -m bench.podman_monitor [--idle-seconds 30] [--counts 1,10,100] [--exits 20]

It starts its own private Podman service (tests/support/podman_env.py), so
the service CPU it reports belongs to this run only.

1. Create-to-running: our ``create()`` until ``Running(Ok)`` is emitted, next
   to a bare podman-py ``containers.create`` + ``start`` on the same socket.
2. Exit detection latency: containers exit at random moments; for each, the
   time from Podman's ``died`` event ``timeNano`` to the moment (a) a bare
   podman-py event subscriber receives it (the floor: Podman 4.3 delivers
   events 20-220 ms late), (b) our monitor emits the exit state, (c) the
   reference emulation sees it. The emulation is the v0.3.1 scheme: one poll
   task per workload every 500 ms reading a shared ``ps`` cache refreshed
   when older than 1 s (over REST here, which is cheaper than the CLI the
   reference forks, so the emulation flatters the reference).
3. Idle cost with N = 1/10/100 sleeping workloads over 30 s: Podman service
   CPU with no monitor at all (Podman's own idle floor, same containers, same
   run), then with our monitor (default timings, and with the old 5 s relist
   for comparison), then with the reference emulation; agent CPU (process
   CPU time, all threads), REST calls per second, and the agent's RSS.

``--only idle`` runs part 3 alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import requests
from podman import PodmanClient

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.model import ExecutionState, InstanceName, State, WorkloadSpec
from ankaios_agent.agent.ports import CreateRequest, StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection, list_containers
from ankaios_agent.runtimes.podman.monitor import MonitorTimings, PodmanEvent
from ankaios_agent.runtimes.podman.runtime import PodmanRuntime, PodmanTimings
from ankaios_agent.runtimes.podman.states import ContainerRecord, record_from_list_entry
from tests.support.podman_env import PodmanEnv, podman_environment

POLL_INTERVAL_S = 0.5


class CountingConnection(PodmanConnection):
    """Counts the REST calls made through ``call_client`` (every call but the event stream)."""

    calls = 0

    def call_client(self) -> PodmanClient:
        client = super().call_client()
        hooks = client.api.hooks["response"]
        if self._count not in hooks:
            hooks.append(self._count)
        return client

    def _count(self, response: object, *args: object, **kwargs: object) -> None:
        self.calls += 1


PS_CACHE_MAX_AGE_S = 1.0


class ReferencePoller:
    """N poll tasks over one 1 s ps cache, as Ankaios v0.3.1 does."""

    def __init__(self, connection: PodmanConnection, agent: str) -> None:
        self._connection = connection
        self._agent = agent
        self._cache: dict[str, ContainerRecord] = {}
        self._cache_time = 0.0
        self._lock = asyncio.Lock()
        self.list_calls = 0

    async def state(self, cid: str) -> ExecutionState:
        async with self._lock:
            if not self._cache or time.monotonic() - self._cache_time > PS_CACHE_MAX_AGE_S:
                entries = await run_blocking(list_containers, self._connection, self._agent)
                self.list_calls += 1
                records = (record_from_list_entry(e, self._agent) for e in entries)
                self._cache = {r.id: r for r in records if r is not None}
                self._cache_time = time.monotonic()
        record = self._cache.get(cid)
        return record.state if record else ExecutionState.lost()

    async def poll(self, cid: str, on_state: Callable[[str, ExecutionState], None]) -> None:
        last: ExecutionState | None = None
        while True:
            state = await self.state(cid)
            if state != last:
                on_state(cid, state)
                last = state
            await asyncio.sleep(POLL_INTERVAL_S)


def spec(env: PodmanEnv, instance: InstanceName, script: str) -> WorkloadSpec:
    config = (
        f"image: {env.image}\ncommandOptions: [--network, none, --stop-timeout, '0']\n"
        f"commandArgs: [sh, -c, {json.dumps(script)}]\n"
    )
    return WorkloadSpec(instance, "podman", config)


def service_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime in clock ticks (USER_HZ = 100)


async def exit_latency(env: PodmanEnv, exits: int) -> None:
    agent = f"bench{uuid.uuid4().hex[:6]}"
    connection = PodmanConnection(env.socket_url)
    runtime = PodmanRuntime(connection, agent, PodmanTimings(monitor=MonitorTimings()))
    poller = ReferencePoller(connection, agent)
    died_ns: dict[str, int] = {}
    ours: dict[str, int] = {}
    reference: dict[str, int] = {}
    done = asyncio.Event()

    def observe(change: StateChange, event: object | None) -> None:
        if isinstance(event, PodmanEvent) and event.action == "died":
            died_ns[change.runtime_id] = event.time_ns
        if change.state.state in (State.SUCCEEDED_OK, State.FAILED_EXEC_FAILED):
            ours.setdefault(change.runtime_id, time.time_ns())
            check_done()

    def seen_by_reference(cid: str, state: ExecutionState) -> None:
        if state.state in (State.SUCCEEDED_OK, State.FAILED_EXEC_FAILED):
            reference.setdefault(cid, time.time_ns())
            check_done()

    def check_done() -> None:
        if len(ours) >= exits and len(reference) >= exits:
            done.set()

    runtime.monitor.on_change = observe
    consumer = asyncio.create_task(_drain(runtime))
    await runtime.monitor.stream_connected.wait()
    floor: dict[str, int] = {}
    stop_floor = threading.Event()
    floor_thread = threading.Thread(
        target=_bare_subscriber, args=(env.socket_url, agent, floor, stop_floor), daemon=True
    )
    floor_thread.start()
    pollers = []
    try:
        for index in range(exits):
            instance = InstanceName(f"exit{index}", agent, "1")
            delay = random.uniform(1.0, 3.0)
            cid = await runtime.create(CreateRequest(spec(env, instance, f"sleep {delay:.3f}")))
            pollers.append(asyncio.create_task(poller.poll(cid, seen_by_reference)))
        async with asyncio.timeout(60):
            await done.wait()
    finally:
        for task in [*pollers, consumer]:
            task.cancel()
        await asyncio.gather(*pollers, consumer, return_exceptions=True)
        stop_floor.set()
        env.remove_by_label(f"agent={agent}")  # the removal events wake the bare subscriber
    _report_exit_latency(died_ns, floor, ours, reference)


async def create_to_running(env: PodmanEnv, runs: int) -> None:
    """Our create() until Running(Ok) is emitted vs a bare podman-py create+start on the same socket."""
    agent = f"c2r{uuid.uuid4().hex[:6]}"
    runtime = PodmanRuntime(PodmanConnection(env.socket_url), agent)
    running: dict[str, asyncio.Event] = {}

    def observe(change: StateChange, _event: object | None) -> None:
        if change.state == ExecutionState.running():
            running.setdefault(change.instance.workload, asyncio.Event()).set()

    runtime.monitor.on_change = observe
    consumer = asyncio.create_task(_drain(runtime))
    await runtime.monitor.stream_connected.wait()
    ours: list[float] = []
    raw: list[float] = []
    client = PodmanClient(base_url=env.socket_url)
    try:
        for index in range(runs):
            name = f"c2r{index}"
            started = time.perf_counter()
            await runtime.create(CreateRequest(spec(env, InstanceName(name, agent, "1"), "sleep 3600")))
            await running.setdefault(name, asyncio.Event()).wait()
            ours.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await run_blocking(_raw_create_start, client, env.image, f"{agent}-raw{index}", agent)
            raw.append((time.perf_counter() - started) * 1000)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        client.close()
        await run_blocking(env.remove_by_label, f"agent={agent}")
        await run_blocking(env.remove_by_label, f"bench-raw={agent}")
    print(f"\n== create-to-running, {runs} runs ==")
    _print_dist("ours: create() until Running(Ok) emitted", ours)
    _print_dist("bare podman-py containers.create + start", raw)
    print(f"ratio median ours/bare: {statistics.median(ours) / statistics.median(raw):.2f}")


def _report_exit_latency(
    died_ns: dict[str, int], floor: dict[str, int], ours: dict[str, int], reference: dict[str, int]
) -> None:
    ours_ms = [(ours[c] - died_ns[c]) / 1e6 for c in died_ns if c in ours]
    ref_ms = [(reference[c] - died_ns[c]) / 1e6 for c in died_ns if c in reference]
    floor_ms = [(floor[c] - died_ns[c]) / 1e6 for c in died_ns if c in floor]
    print(f"\n== exit detection latency, {len(ours_ms)} exits (from the died event's timeNano) ==")
    _print_dist("bare podman-py event subscriber (the floor)", floor_ms)
    _print_dist("event-driven monitor (ours)", ours_ms)
    _print_dist("reference emulation (500 ms poll, 1 s ps cache)", ref_ms)
    over_floor = statistics.median(ours_ms) - statistics.median(floor_ms)
    verdict = "met" if over_floor <= 20 else "NOT met"
    print(f"ours median - floor median: {over_floor:+.1f} ms (target <= +20 ms: {verdict})")
    print(f"ratio median reference/ours: {statistics.median(ref_ms) / statistics.median(ours_ms):.1f}x")


def _bare_subscriber(url: str, agent: str, seen: dict[str, int], stop: threading.Event) -> None:
    """The floor: a plain podman-py events() subscriber noting when each died event arrives."""
    client = PodmanClient(base_url=url)
    # podman-py's prepare_filters takes plain strings (a list would be sent as its repr).
    filters = {"label": f"agent={agent}", "type": "container"}
    try:
        for event in client.events(filters=filters, decode=True):
            if stop.is_set():
                return
            if isinstance(event, dict) and event.get("Action") == "died":
                seen.setdefault(str(event.get("id")), time.time_ns())
    except requests.RequestException:
        return  # the service went away at the end of the run
    finally:
        client.close()


def _raw_create_start(client: PodmanClient, image: str, name: str, agent: str) -> None:
    container = client.containers.create(
        image, ["sleep", "3600"], name=name, labels={"bench-raw": agent}, network_mode="none"
    )
    container.start()


async def idle_cost(env: PodmanEnv, counts: list[int], seconds: float) -> None:
    service_pid = env.service_pid
    print(f"\n== idle cost over {seconds:.0f} s (CPU as % of one core; REST calls/s) ==")
    print(
        f"{'N':>4}  {'podman floor':>12}  {'ours podman':>11}  {'over floor':>10}  {'ours agent':>10}  "
        f"{'ours calls/s':>12}  {'5s-relist podman':>16}  {'ref podman':>10}  {'ref agent':>9}  "
        f"{'ref calls/s':>11}  {'RSS MB':>6}"
    )
    for count in counts:
        agent = f"idle{uuid.uuid4().hex[:6]}"
        connection = CountingConnection(env.socket_url)
        runtime = PodmanRuntime(connection, agent)
        try:
            cids = [
                await runtime.create(
                    CreateRequest(spec(env, InstanceName(f"idle{i}", agent, "1"), "sleep 3600"))
                )
                for i in range(count)
            ]
            await asyncio.sleep(1.0)
            # Podman's own floor: the same containers, nobody watching.
            _floor_agent, floor_service = await _measure(seconds, service_pid)

            consumer = asyncio.create_task(_drain(runtime))
            await runtime.monitor.stream_connected.wait()
            await asyncio.sleep(1.0)  # let the first relist settle
            calls_before = connection.calls
            ours_agent, ours_service = await _measure(seconds, service_pid)
            ours_calls = (connection.calls - calls_before) / seconds
            rss = _rss_mb()
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)

            old = PodmanRuntime(
                connection, agent, PodmanTimings(monitor=MonitorTimings(relist_interval_s=5.0))
            )
            consumer = asyncio.create_task(_drain(old))
            await old.monitor.stream_connected.wait()
            await asyncio.sleep(1.0)
            _old_agent, old_service = await _measure(seconds, service_pid)
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)

            poller = ReferencePoller(connection, agent)
            tasks = [asyncio.create_task(poller.poll(cid, lambda _c, _s: None)) for cid in cids]
            await asyncio.sleep(1.0)
            calls_before = poller.list_calls
            ref_agent, ref_service = await _measure(seconds, service_pid)
            calls = (poller.list_calls - calls_before) / seconds
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await run_blocking(env.remove_by_label, f"agent={agent}")
            await runtime.close()
        print(
            f"{count:>4}  {floor_service:>11.2f}%  {ours_service:>10.2f}%  "
            f"{ours_service - floor_service:>+9.2f}%  "
            f"{ours_agent:>9.2f}%  {ours_calls:>12.2f}  {old_service:>15.2f}%  {ref_service:>9.2f}%  "
            f"{ref_agent:>8.2f}%  {calls:>11.2f}  {rss:>6.1f}"
        )
    timings = MonitorTimings()
    print(
        f"ours: one event stream + a safety relist every {timings.relist_interval_s:.0f} s while the stream"
        " is healthy, whatever N; reference: N polls per 0.5 s"
    )
    print(
        "targets at N=100: Podman over its floor <= 1 % of a core, agent <= 1 %, <= 1 REST call/s,"
        " RSS <= 60 MB"
    )


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _measure(seconds: float, service_pid: int) -> tuple[float, float]:
    cpu0, svc0, wall0 = time.process_time(), service_cpu_s(service_pid), time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - wall0
    return (time.process_time() - cpu0) / wall * 100, (service_cpu_s(service_pid) - svc0) / wall * 100


async def _drain(runtime: PodmanRuntime) -> None:
    async for _ in runtime.events():
        pass


def _print_dist(label: str, values: list[float]) -> None:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    median = statistics.median(ordered)
    print(f"{label:>50}: median {median:7.1f} ms  p95 {p95:7.1f} ms  max {ordered[-1]:7.1f} ms")


async def main(args: argparse.Namespace) -> None:
    with podman_environment() as env:
        if args.only in ("all", "create"):
            await create_to_running(env, args.runs)
        if args.only in ("all", "exits"):
            await exit_latency(env, args.exits)
        if args.only in ("all", "idle"):
            await idle_cost(env, [int(n) for n in args.counts.split(",")], args.idle_seconds)


def run(main_coro: Callable[[argparse.Namespace], Awaitable[None]]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--counts", default="1,10,100", help="idle workload counts, comma-separated")
    parser.add_argument("--exits", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--only", choices=("all", "create", "exits", "idle"), default="all")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_coro(parser.parse_args()))  # type: ignore[arg-type]


if __name__ == "__main__":
    run(main)
