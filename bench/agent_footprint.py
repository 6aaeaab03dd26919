"""Benchmark: the real ``ank-agent`` process managing N idle workloads.

Prints figures, asserts nothing. Run from the repository root:

    python -m bench.agent_footprint [--workloads 100] [--idle-seconds 30]

Starts a private Podman service, the server double with N busybox sleepers
assigned to one agent, and the agent as a separate process (exactly as
``ank-agent`` runs on a device). Once every workload shows ``Running(Ok)`` at
the server, it measures over the idle window: the agent process's CPU (% of
one core, all threads), the Podman service's CPU, the agent's RSS beside the
bare-import floor measured in the same run, and how
long it took from the agent's start until all N were running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

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
    floor = import_floor_mib()
    print(f"agent RSS                                   {rss:8.1f} MiB (target <= 50 MiB)")
    print(f"bare-import floor (same modules, idle)      {floor:8.1f} MiB")
    print(f"agent RSS above the floor                   {rss - floor:8.1f} MiB ({rss / floor:.2f} x)")


# What the agent process imports before it does anything (the product's modules and
# every dependency they pull in), measured in a fresh interpreter outside the source
# tree: the part of the RSS that no amount of tuning of our own code can remove.
_FLOOR_PROBE = (
    "import ankaios_agent.agent.app, ankaios_agent.agent.wiring, ankaios_agent.agent.cli\n"
    "for line in open('/proc/self/status'):\n"
    "    if line.startswith('VmRSS:'): print(int(line.split()[1]))\n"
)


def import_floor_mib() -> float:
    done = subprocess.run(
        [sys.executable, "-c", _FLOOR_PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    return int(done.stdout.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    with podman_environment() as env, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(measure(env, args.workloads, args.idle_seconds))


if __name__ == "__main__":
    main()
