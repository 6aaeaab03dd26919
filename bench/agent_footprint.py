"""Benchmark: the real ``ank-agent`` process managing N idle workloads.

Prints figures, asserts nothing. Run from the repository root:

    python -m bench.agent_footprint [--workloads 100] [--idle-seconds 30]

Starts a private Podman service, the server double with N busybox sleepers
assigned to one agent, and the agent as a separate process (exactly as
``ank-agent`` runs on a device). Once every workload shows ``Running(Ok)`` at
the server, it measures over the idle window: the agent process's CPU (% of
one core, all threads), the Podman service's CPU, the agent's RSS beside its
floors measured in the same run, and how long it took from the agent's start
until all N were running.

The agent runs from compiled bytecode, as an installed agent does (pip
compiles at install time); compiling from source at every start would add
allocations that an installed agent never makes.

The floors, each in a fresh interpreter: the dependencies alone (grpcio,
protobuf's runtime, podman-py with requests, PyYAML, tenacity, asyncio); the
same with one gRPC stream open to a loopback server (gRPC touches several MiB
of its own code once a channel is connected); the agent's modules imported
as ``ank-agent`` imports them before it connects. What the agent adds above
the second floor is the cost of our code: its modules, the dialect it loads
when the session starts, and the N workloads. One more probe prints what the
chosen HTTP stack weighs: the connected floor with the standard library's
``http.client`` in place of podman-py and requests.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio

import ankaios_agent
from ankaios_agent.proto import ankaios_pb2 as pb
from tests.server_double.server import ServerDouble
from tests.support.podman_env import PodmanEnv, podman_environment

CLOCK_TICKS = 100  # USER_HZ


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def desired_state(agent: str, count: int, image: str) -> pb.State:
    config = (
        f"image: {image}\ncommandOptions: [--network, none]\n"
        "commandArgs: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n"
    )
    workloads = {
        f"idle{index}": pb.Workload(agent=agent, runtime="podman", runtimeConfig=config)
        for index in range(count)
    }
    return pb.State(apiVersion="v0.1", workloads=workloads)


async def measure(env: PodmanEnv, count: int, idle_seconds: float) -> None:
    agent = f"foot{uuid.uuid4().hex[:6]}"
    server = ServerDouble(desired_state(agent, count, env.image))
    port = await server.start()
    run_folder = Path(tempfile.mkdtemp(prefix="ank-bench-"))
    (run_folder / f"{agent}_io").mkdir()
    cmd = [
        sys.executable, "-m", "ankaios_agent", "--name", agent, "--server", f"127.0.0.1:{port}",
        "--run-folder", str(run_folder), "--podman-socket", env.socket_url, "--log-level", "warning",
    ]  # fmt: skip
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL)
    try:

        def all_running() -> bool:
            states = server.states
            running = sum(1 for s in states.values() if s.display == "Running(Ok)")
            return running == count

        await server.wait_until(all_running, timeout=60 + count)
        ready_s = time.monotonic() - started
        await asyncio.sleep(2.0)  # let the start-up relists settle
        service_pid = env.service_pid
        agent0, service0, wall0 = cpu_seconds(proc.pid), cpu_seconds(service_pid), time.monotonic()
        await asyncio.sleep(idle_seconds)
        wall = time.monotonic() - wall0
        agent_cpu = (cpu_seconds(proc.pid) - agent0) / wall * 100
        service_cpu = (cpu_seconds(service_pid) - service0) / wall * 100
        rss = rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), timeout=10)
        await server.stop()
        env.remove_by_label(f"agent={agent}")
    print(f"== the real agent with {count} idle workloads, {idle_seconds:.0f} s window ==")
    print(f"all {count} Running(Ok) at the server after   {ready_s:8.1f} s")
    print(f"agent CPU                                   {agent_cpu:8.2f} % of one core (target <= 1 %)")
    print(f"podman service CPU                          {service_cpu:8.2f} % of one core")
    async with echo_server() as echo_port:
        deps = await rss_of_probe(_DEPENDENCIES)
        connected = await rss_of_probe(_DEPENDENCIES + _OPEN_STREAM.format(port=echo_port))
        stdlib_http = await rss_of_probe(_WITHOUT_PODMAN_PY + _OPEN_STREAM.format(port=echo_port))
    entry = await rss_of_probe(_AGENT_ENTRY)
    print(f"agent RSS                                   {rss:8.1f} MiB (target <= 50 MiB)")
    print(f"floor: the dependencies imported            {deps:8.1f} MiB")
    print(f"floor: the same with one gRPC stream open   {connected:8.1f} MiB")
    print(f"the agent's modules imported, no session    {entry:8.1f} MiB")
    print(f"agent RSS above the connected floor         {rss - connected:8.1f} MiB ({rss / connected:.2f} x)")
    print(
        f"the connected floor with the standard library's http.client in place of podman-py and\n"
        f"  requests                                  {stdlib_http:8.1f} MiB: that HTTP stack costs "
        f"{connected - stdlib_http:.1f} MiB of the floor"
    )


_RSS = (
    "def rss_kib():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmRSS:'): return int(line.split()[1])\n"
)


# What no tuning of our own code can remove: the libraries the agent is built on, with
# requests imported the way the agent imports it (``ankaios_agent.runtimes``: no detector).
_DEPENDENCIES = (
    "import ankaios_agent.runtimes\n"
    "import asyncio, ssl, grpc, grpc.aio, podman, requests, yaml, tenacity\n"
    "from google.protobuf import descriptor_pool, message\n"
)
# The other floor: the same libraries, but Podman's REST API over the standard library's
# http.client (with json) instead of podman-py and requests, which the agent is built on.
_WITHOUT_PODMAN_PY = (
    "import asyncio, ssl, grpc, grpc.aio, yaml, tenacity, http.client, json\n"
    "from google.protobuf import descriptor_pool, message\n"
)
# A channel that has carried a message has run gRPC's transport; measured as the agent idles.
_OPEN_STREAM = (
    "async def _open():\n"
    "    channel = grpc.aio.insecure_channel('127.0.0.1:{port}')\n"
    "    call = channel.stream_stream('/bench.Echo/Echo')()\n"
    "    await call.write(b'x')\n"
    "    await call.read()\n"
    "    await asyncio.sleep(2)\n"
    "    print(rss_kib())\n"
    "asyncio.run(_open())\n"
)
# What ``ank-agent`` imports before it parses its arguments and connects.
_AGENT_ENTRY = "import ankaios_agent.agent.cli, ankaios_agent.agent.app, ankaios_agent.agent.wiring\n"


async def rss_of_probe(code: str) -> float:
    """VmRSS in MiB of a fresh interpreter (outside the source tree) that ran ``code``.

    Waited for without blocking the loop, which serves the probe's gRPC stream."""
    if "rss_kib()" not in code:
        code += "print(rss_kib())\n"
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _RSS + code, stdout=asyncio.subprocess.PIPE, cwd=tempfile.gettempdir()
    )
    out, _ = await probe.communicate()
    if probe.returncode != 0:
        raise RuntimeError(f"the floor probe failed with exit code {probe.returncode}")
    return int(out.decode().strip().splitlines()[-1]) / 1024


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    """A loopback gRPC server that echoes each message of one stream method."""

    async def echo(
        requests: AsyncIterator[bytes], _context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    server = grpc.aio.server()
    handler = grpc.stream_stream_rpc_method_handler(echo)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(grace=None)


def compile_bytecode() -> None:
    """Compile the agent's modules, as pip does when it installs the agent.

    compileall does not follow the symbolic links through which the source tree puts the
    top-level folders into the package, so each subpackage is compiled where it really is."""
    package = Path(ankaios_agent.__file__).parent
    for folder in (package, *(sub.resolve() for sub in package.iterdir() if sub.is_dir())):
        compileall.compile_dir(folder, quiet=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    compile_bytecode()
    with podman_environment() as env, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(measure(env, args.workloads, args.idle_seconds))


if __name__ == "__main__":
    main()
