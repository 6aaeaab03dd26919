"""Benchmark: what the control-interface relay adds to a request/response round trip.

Three processes, so the relay competes for the CPU the way it would on a device:

* server:   a minimal grpc.aio echo of the v0.3.1 ``AgentConnection`` service on
            loopback; every ``request`` is answered with a small CompleteState
            carrying the same id (the real server takes its own prefix off again);
* agent:    one event loop with one ConnectAgent stream and ControlInterfaceHost;
            both paths go through the agent's own conversion of the server stream;
            "direct" requests go straight into the stream from the agent's loop,
            relayed ones come from the workload process through the FIFOs;
* workload: a plain blocking FIFO client (like a program in a container).

Measured for both paths in the same run: ping-pong latency (p50/p99) and
windowed throughput (a fixed number of requests in flight). The relay path
pays for the FIFO hops, framing, the codec and the extra process; the target
is at most 0.15 ms added at p50 and at least 90 % of the direct throughput,
both printed beside the direct figures of the same run.

Two floors, also measured in every round, with the same workload client and FIFOs:

* floor + server: the agent's loop turns each frame, without parsing it, into the
  direct path's own request and answers with a response frame made in advance when
  the server's response is back. That is the FIFO hops, the wake-ups and the extra
  process around the same server round trip, with none of the relay's work (its
  parsing, checks, routing and encoding): what any relay over these FIFOs pays, and
  on a machine with few cores the biggest part of what the relay adds;
* floor: the same, but answered at once without the server: the bare FIFO round trip.

The workload client encodes its requests before the clock starts, as a load
generator does, and the paths alternate in 15 short rounds by default: single
rounds move by +-20 % on a machine with two cores, the medians do not.

The agent process's CPU per request is printed for each path (the relay's own work
is its excess over floor + server), and the workload process's: on a machine with
few cores it competes with the agent and the server, which the direct path does not
have to share with anyone.

Run from the repository root: ``/work/venv/bin/python -m bench.control_interface``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from ankaios_agent.agent import conversion
from ankaios_agent.agent.model import CompleteStateRequest, InstanceName, Request, Response
from ankaios_agent.agent.wire_format import serialized
from ankaios_agent.control_interface import ControlInterfaceHost, RelaySettings
from ankaios_agent.control_interface.framing import FrameDecoder, frame
from ankaios_agent.proto import ankaios_pb2 as pb
from ankaios_agent.proto import ankaios_pb2_grpc as pb_grpc

FIELD_MASK = ("desiredState.workloads",)
ROOT = Path(__file__).resolve().parent.parent


def _answer() -> pb.CompleteState:
    workloads = {
        f"wl{i}": pb.Workload(agent="agent_A", runtime="podman", runtimeConfig="image: busybox\n")
        for i in range(3)
    }
    return pb.CompleteState(desiredState=pb.State(apiVersion="v0.1", workloads=workloads))


# ----------------------------------------------------------------------------- server process


class EchoServicer(pb_grpc.AgentConnectionServicer):
    async def ConnectAgent(  # noqa: N802 (generated name)
        self, request_iterator: AsyncIterator[pb.ToServer], context: Any
    ) -> AsyncIterator[pb.FromServer]:
        answer = _answer()
        async for message in request_iterator:
            if message.WhichOneof("ToServerEnum") == "request":
                response = pb.Response(requestId=message.request.requestId, completeState=answer)
                yield pb.FromServer(response=response)


async def run_server() -> None:
    server = grpc.aio.server()
    pb_grpc.add_AgentConnectionServicer_to_server(EchoServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


# ----------------------------------------------------------------------------- workload process


def run_workload(folder: Path, pings: int, total: int, window: int) -> None:
    """Blocking FIFO client; prints its figures as JSON on stdout."""
    out_fd = os.open(folder / "output", os.O_WRONLY)
    in_fd = os.open(folder / "input", os.O_RDONLY)
    decoder = FrameDecoder()
    pending: list[bytes] = []

    def next_frame() -> pb.Response:
        while not pending:
            data = os.read(in_fd, 65536)
            if not data:
                raise SystemExit("input closed")
            pending.extend(decoder.feed(data))
        return pb.FromServer.FromString(pending.pop(0)).response

    def request(i: int) -> bytes:
        content = pb.CompleteStateRequest(fieldMask=FIELD_MASK)
        return frame(
            pb.ToServer(
                request=pb.Request(requestId=str(i), completeStateRequest=content)
            ).SerializeToString()
        )

    latencies: list[float] = []
    for i in range(pings):
        data = request(i)
        start = time.perf_counter()
        os.write(out_fd, data)
        response = next_frame()
        latencies.append(time.perf_counter() - start)
        assert response.requestId == str(i), response.requestId

    # One thread, like the direct path's single event loop: keep ``window`` requests written
    # and not yet answered, and write the next one whenever an answer arrives. The requests
    # are encoded before the clock starts, as a load generator does: on a machine with few
    # cores the client's own protobuf work would otherwise be charged to the relay.
    frames = [request(i) for i in range(total)]
    start = time.perf_counter()
    cpu = time.process_time()
    written = 0
    for written in range(min(window, total)):
        os.write(out_fd, frames[written])
    written = min(window, total)
    for _ in range(total):
        next_frame()
        if written < total:
            os.write(out_fd, frames[written])
            written += 1
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    figures = {"latencies": latencies, "throughput": total / elapsed, "cpu_per_request": cpu / max(total, 1)}
    print(json.dumps(figures), flush=True)


# ----------------------------------------------------------------------------- agent process


class FifoEcho:
    """The floor: a FIFO pair the agent's loop answers frame for frame with canned responses.

    Same client, same FIFOs, same response sizes as the relay, but nothing is decoded
    or encoded on the agent's side. With ``forward``, each frame first becomes a direct
    request to the server (as the direct path makes it) and its response, handed to
    :meth:`route`, releases the canned answer: the FIFO hops and the extra process around
    the same server round trip, without the relay's parsing, checks and bookkeeping.
    """

    def __init__(self, folder: Path, pings: int, forward: Callable[[Request], None] | None = None) -> None:
        self._forward = forward
        folder.mkdir()
        os.mkfifo(folder / "output")
        os.mkfifo(folder / "input")
        self.folder = folder
        answer = _answer()
        self._answers = [
            frame(
                pb.FromServer(
                    response=pb.Response(requestId=str(i), completeState=answer)
                ).SerializeToString()
            )
            for i in range(pings)
        ]
        self._next = 0
        self._decoder = FrameDecoder()
        self._loop = asyncio.get_running_loop()
        # Read-write: a FIFO opened so never waits for a reader, and the client's blocking
        # open of its read end returns at once (this end never reads).
        self._in_fd = os.open(folder / "input", os.O_RDWR | os.O_NONBLOCK)
        self._out_fd = self._open_output()

    def _open_output(self) -> int:
        fd = os.open(self.folder / "output", os.O_RDONLY | os.O_NONBLOCK)
        self._loop.add_reader(fd, self._on_readable)
        return fd

    def _on_readable(self) -> None:
        try:
            data = os.read(self._out_fd, 65536)
        except BlockingIOError:
            return
        if not data:  # the client left: a fresh read end for the next one (no EOF storm)
            self._loop.remove_reader(self._out_fd)
            os.close(self._out_fd)
            self._decoder.reset()
            self._next = 0
            self._out_fd = self._open_output()
            return
        for _ in self._decoder.feed(data):
            if self._forward is None:
                os.write(self._in_fd, self._answers[self._next])
            else:
                content = CompleteStateRequest(FIELD_MASK)
                self._forward(Request(request_id=f"floor:{self._next}", content=content))
            self._next += 1

    def route(self, response: Response) -> None:
        """Where the server's response goes instead of the relay: the canned answer it numbers."""
        os.write(self._in_fd, self._answers[int(response.request_id.rpartition(":")[2])])

    def close(self) -> None:
        self._loop.remove_reader(self._out_fd)
        os.close(self._out_fd)
        os.close(self._in_fd)


async def run_client(folder: Path, pings: int, total: int, window: int) -> tuple[dict[str, Any], float]:
    """Run the workload process against ``folder``; its figures and the agent's CPU meanwhile."""
    cpu = time.process_time()
    workload = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.control_interface", "--role", "workload",
        "--folder", str(folder), "--pings", str(pings), "--total", str(total),
        "--window", str(window), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await workload.communicate()
    figures: dict[str, Any] = json.loads(out)
    return figures, time.process_time() - cpu


class AgentSide:
    """One ConnectAgent stream; conversions by the agent's own conversion module."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self._direct: dict[str, asyncio.Future[Response]] = {}
        self.route: Callable[[Response], None] = lambda response: None

    def forward(self, request: Request) -> None:
        """What the relay calls: the domain Request is encoded as the connection does it."""
        wire = conversion.encode(request)
        assert wire is not None
        self._outgoing.put_nowait(serialized(wire))

    async def writer(self) -> None:
        await self._call.write(pb.ToServer(agentHello=pb.AgentHello(agentName="agent_A")).SerializeToString())
        while True:
            await self._call.write(await self._outgoing.get())

    async def reader(self) -> None:
        while True:
            message = await self._call.read()
            if message is grpc.aio.EOF:
                return
            response = conversion.from_server(message, "agent_A")
            assert isinstance(response, Response)
            future = self._direct.pop(response.request_id, None)
            if future is not None:
                future.set_result(response)
            else:
                self.route(response)

    def send_direct(self, request_id: str) -> asyncio.Future[Response]:
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._direct[request_id] = future
        self.forward(Request(request_id=request_id, content=CompleteStateRequest(FIELD_MASK)))
        return future


async def measure_direct(agent: AgentSide, pings: int, total: int, window: int) -> tuple[list[float], float]:
    latencies = []
    for i in range(pings):
        start = time.perf_counter()
        await agent.send_direct(f"direct:{i}")
        latencies.append(time.perf_counter() - start)
    slots = asyncio.Semaphore(window)
    futures = []
    start = time.perf_counter()
    for i in range(total):
        await slots.acquire()
        future = agent.send_direct(f"direct-t:{i}")
        future.add_done_callback(lambda _: slots.release())
        futures.append(future)
    await asyncio.gather(*futures)
    return latencies, total / (time.perf_counter() - start)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Figures:
    latencies: list[float] = field(default_factory=list)
    throughputs: list[float] = field(default_factory=list)
    cpu_per_request: list[float] = field(default_factory=list)
    """Of the agent process, over a whole round."""

    def add(self, latencies: list[float], throughput: float, cpu: float) -> None:
        self.latencies += latencies
        self.throughputs.append(throughput)
        self.cpu_per_request.append(cpu)


def report(paths: dict[str, Figures], floor: list[float], workload_cpu: list[float], title: str) -> None:
    direct, relay, around = paths["direct"], paths["relay"], paths["floor+server"]
    ms = 1000.0
    print(f"{title}\n(latency over all rounds; throughput and CPU = median of the rounds)\n")
    print(f"{'path':50} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>9} {'agent CPU/req':>14}")
    rows = (
        ("direct (agent loop -> server)", direct),
        ("relay (FIFO client -> relay -> server)", relay),
        ("floor + server (FIFO client -> forward -> server)", around),
        ("floor (FIFO client -> canned answer, no relay)", Figures(floor)),
    )
    for name, figures in rows:
        lat = figures.latencies
        rate_text = f"{statistics.median(figures.throughputs):9.0f}" if figures.throughputs else f"{'-':>9}"
        cpu_text = (
            f"{statistics.median(figures.cpu_per_request) * 1e6:11.0f} us" if figures.cpu_per_request else ""
        )
        print(
            f"{name:50} {percentile(lat, 0.5) * ms:8.3f} {percentile(lat, 0.99) * ms:8.3f} "
            f"{statistics.fmean(lat) * ms:8.3f} {rate_text} {cpu_text:>14}"
        )
    met = {True: "met", False: "NOT met"}
    p50 = {name: percentile(figures.latencies, 0.5) * ms for name, figures in paths.items()}
    added_p50 = p50["relay"] - p50["direct"]
    around_p50 = p50["floor+server"] - p50["direct"]
    print(f"\nrelay adds {added_p50:.3f} ms at p50 (target <= 0.15 ms): {met[added_p50 <= 0.15]}")
    print(
        f"  the FIFO hops and the client process around the same server round trip, with none of the "
        f"relay's work, add {around_p50:.3f} ms (the bare FIFO round trip alone: "
        f"{percentile(floor, 0.5) * ms:.3f} ms);\n  the relay's own work: {added_p50 - around_p50:.3f} ms"
    )
    rate = {name: statistics.median(figures.throughputs) for name, figures in paths.items()}
    ratio = rate["relay"] / rate["direct"]
    paired = [r / d for r, d in zip(relay.throughputs, direct.throughputs, strict=True)]
    print(f"relay throughput / direct = {ratio:.1%} (target >= 90 %): {met[ratio >= 0.9]}")
    print(f"  per round: {', '.join(f'{r:.0%}' for r in paired)}")
    print(f"  median of the per-round ratios (paths back to back): {statistics.median(paired):.1%}")
    print(f"  floor + server throughput / direct = {rate['floor+server'] / rate['direct']:.1%}")
    cpu = {name: statistics.median(figures.cpu_per_request) * 1e6 for name, figures in paths.items()}
    print(
        f"agent process CPU per request: relay adds {cpu['relay'] - cpu['direct']:.0f} us over direct, "
        f"{cpu['relay'] - cpu['floor+server']:.0f} us over floor + server (its own work); the workload "
        f"process spends {statistics.median(workload_cpu) * 1e6:.0f} us per request in flight"
    )


async def run_agent(pings: int, total: int, window: int, rounds: int) -> int:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.control_interface", "--role", "server",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    port = int((await server.stdout.readline()).decode())
    paths = {"direct": Figures(), "relay": Figures(), "floor+server": Figures()}
    floor: list[float] = []
    workload_cpu: list[float] = []
    requests = pings + total
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            # Bytes in, as the agent's connection writes them (it serializes each message itself).
            call = channel.stream_stream(
                "/ankaios.AgentConnection/ConnectAgent", response_deserializer=pb.FromServer.FromString
            )()
            agent = AgentSide(call)
            tasks = [asyncio.create_task(agent.writer()), asyncio.create_task(agent.reader())]
            with tempfile.TemporaryDirectory(prefix="ank-bench-") as tmp:
                cis = ControlInterfaceHost(
                    Path(tmp) / "agent_A_io", agent.forward, RelaySettings(open_retry_max=0.01)
                )
                agent.route = cis.route
                folder = await cis.ensure(InstanceName("bench", "agent_A", "0" * 64))
                echo = FifoEcho(Path(tmp) / "floor", pings)
                around = FifoEcho(Path(tmp) / "floor-server", requests, agent.forward)
                await measure_direct(agent, 200, 500, window)  # warm-up
                # Alternate the paths in short rounds: load from other processes on the
                # machine then hits all alike, and medians over rounds are stable.
                for _ in range(rounds):
                    cpu = time.process_time()
                    lat, tp = await measure_direct(agent, pings, total, window)
                    paths["direct"].add(lat, tp, (time.process_time() - cpu) / requests)
                    relayed, cpu_used = await run_client(folder, pings, total, window)
                    paths["relay"].add(relayed["latencies"], relayed["throughput"], cpu_used / requests)
                    workload_cpu.append(relayed["cpu_per_request"])
                    agent.route = around.route
                    echoed, cpu_used = await run_client(around.folder, pings, total, window)
                    agent.route = cis.route
                    paths["floor+server"].add(echoed["latencies"], echoed["throughput"], cpu_used / requests)
                    floor += (await run_client(echo.folder, pings, 0, window))[0]["latencies"]
                counters = cis.counters("bench")
                echo.close()
                around.close()
                await cis.close()
            for task in tasks:
                task.cancel()
    finally:
        server.terminate()
        await server.wait()

    report(
        paths,
        floor,
        workload_cpu,
        f"{rounds} rounds of: {pings} ping-pong round trips, then {total} requests with {window} in flight",
    )
    if counters is not None:
        print(
            f"relay counters: forwarded={counters.requests_forwarded} written={counters.responses_written} "
            f"dropped={sum(counters.requests_dropped.values()) + counters.responses_dropped_buffer_full} "
            f"read pauses={counters.read_pauses}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", choices=("agent", "server", "workload"), default="agent")
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--total", type=int, default=4000)
    parser.add_argument("--window", type=int, default=32)
    # The machine's noise moves single rounds by +-20 % on two cores; medians of 15 are stable.
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(run_server())
        return 0
    if args.role == "workload":
        run_workload(args.folder, args.pings, args.total, args.window)
        return 0
    return asyncio.run(run_agent(args.pings, args.total, args.window, args.rounds))


if __name__ == "__main__":
    raise SystemExit(main())
