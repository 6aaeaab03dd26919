"""The agent's main job, end to end, on this machine: ``python -m demo`` (or ``tox -e demo``).

1. prepares Podman (a private ``podman system service``, the local busybox image);
2. starts the bundled server double of the chosen protocol (``--protocol v0.3``,
   the default: ``tests/server_double/sample_state.yaml``; ``--protocol v1``: the
   Ankaios v1.0.1 double with ``tests/server_double_v1/sample_state.yaml``)
   (a database, a migration job that waits for it, a web server that waits for
   both, a workload with a control interface, one unscheduled);
3. starts the real ``ank-agent`` process against it (``--protocol auto``: the
   agent finds out which version the server speaks);
4. prints every state the agent reports, as it happens, in a table, and the
   control-interface requests the server answers;
5. once everything has settled, changes the web server's configuration, the
   way ``ank set state`` would, so the update sequence shows too;
6. on Ctrl-C (or at the end with ``--once``): stops the agent with SIGTERM,
   removes the containers and folders the demo created, stops the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from ankaios_agent.agent import conversion
from ankaios_agent.agent.dialect_v1 import conversion as conversion_v1
from ankaios_agent.agent.model import ExecutionState
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import ankaios_pb2 as pb
from tests.server_double.server import ServerDouble
from tests.server_double.state import state_from_yaml
from tests.server_double_v1 import ServerDoubleV1
from tests.server_double_v1 import state_from_yaml as v1_state_from_yaml
from tests.support.podman_env import PodmanEnv, PodmanUnavailable, podman_environment

TESTS = Path(__file__).resolve().parent.parent / "tests"
SAMPLE_STATE = TESTS / "server_double" / "sample_state.yaml"
SAMPLE_STATE_V1 = TESTS / "server_double_v1" / "sample_state.yaml"
SAMPLE_AGENT = "agent_A"
SETTLED = {
    "database": "Running(Ok)",
    "migrate": "Succeeded(Ok)",
    "webserver": "Running(Ok)",
    "ctl_client": "Succeeded(Ok)",
}
SETTLED_V1 = {
    "database": "Running(Ok)",
    "migrate": "Succeeded(Ok)",
    "webserver": "Running(Ok)",
    "state_reader": "Running(Ok)",
}
Server = ServerDouble | ServerDoubleV1
WEB = "webserver"  # the workload whose configuration the demo changes
ROW = "{time:>9}  {workload:12} {agent:10} {state:26} {info}"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=25551, help="server double port (0: any free port)")
    parser.add_argument(
        "--agent", default=SAMPLE_AGENT, help="agent name (the sample state's agent_A is renamed to it)"
    )
    parser.add_argument(
        "--once", action="store_true", help="stop after the update has settled instead of waiting for Ctrl-C"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each phase")
    parser.add_argument(
        "--protocol",
        choices=["v0.3", "v1"],
        default="v0.3",
        help="which server double to run: Ankaios v0.3.1 (default) or v1.0.1",
    )
    return parser.parse_args(argv)


def _sample_text(path: Path, agent: str) -> str:
    text = path.read_text()
    if agent != SAMPLE_AGENT:
        data = yaml.safe_load(text)
        for workload in data["workloads"].values():
            if workload.get("agent") == SAMPLE_AGENT:
                workload["agent"] = agent
        text = yaml.safe_dump(data)
    return text


def _load_sample(agent: str) -> pb.State:
    return state_from_yaml(_sample_text(SAMPLE_STATE, agent))


def _make_server(protocol: str, agent: str) -> Server:
    if protocol == "v1":
        return ServerDoubleV1(v1_state_from_yaml(_sample_text(SAMPLE_STATE_V1, agent)))
    return ServerDouble(_load_sample(agent))


def _execution_state(server: Server, wire: object) -> ExecutionState:
    if isinstance(server, ServerDoubleV1):
        assert isinstance(wire, base.ExecutionState)
        return conversion_v1.execution_state_from_proto(wire)
    assert isinstance(wire, pb.ExecutionState)
    return conversion.execution_state_from_proto(wire)


class StatePrinter:
    """Prints each state an agent reports to the server, in arrival order, as table rows."""

    def __init__(self, server: Server, agent: str) -> None:
        self._server = server
        self._agent = agent
        self._seen = 0
        self._answered = 0
        self._start = time.monotonic()

    def header(self) -> None:
        print(
            ROW.format(time="t+s", workload="WORKLOAD", agent="AGENT", state="EXECUTION STATE", info="INFO")
        )

    def flush(self) -> None:
        received = self._server.received.get(self._agent, [])
        for msg in received[self._seen :]:
            kind = msg.WhichOneof("ToServerEnum")
            if kind == "updateWorkloadState":
                for ws in msg.updateWorkloadState.workloadStates:
                    state = _execution_state(self._server, ws.executionState)
                    self._row(
                        ws.instanceName.workloadName, ws.instanceName.agentName, state.display, state.info
                    )
            elif kind == "request" and not msg.request.requestId.startswith("@"):
                what = msg.request.WhichOneof("RequestContent")
                self._row(
                    "", self._agent, "(control interface)", f"{what} {msg.request.requestId!r} answered"
                )
        self._seen = len(received)

    def _row(self, workload: str, agent: str, state: str, info: str) -> None:
        elapsed = f"{time.monotonic() - self._start:.2f}"
        print(ROW.format(time=elapsed, workload=workload, agent=agent, state=state, info=info), flush=True)


def _shows(server: Server, agent: str, expected: dict[str, str]) -> bool:
    return all(
        any(s.display == display for s in server.state_of(workload, agent))
        for workload, display in expected.items()
    )


async def _phase(server: Server, printer: StatePrinter, settled: Callable[[], bool], title: str) -> None:
    """Print rows as they arrive until ``settled()`` holds (re-checked after every message)."""
    print(f"\n--- {title}", flush=True)

    def check() -> bool:
        printer.flush()
        return settled()

    await server.wait_until(check, timeout=None)


async def _update_webserver(server: Server) -> str:
    """Change the web server's runtimeConfig like ``ank set state``; return the new instance id."""
    if isinstance(server, ServerDoubleV1):
        desired_v1 = base.State()
        desired_v1.CopyFrom(server.desired)
        web_v1 = desired_v1.workloads.workloads["webserver"]
        web_v1.runtimeConfig = web_v1.runtimeConfig.replace("while true", "echo v2; while true")
        await server.set_state(base.CompleteState(desiredState=desired_v1), [f"desiredState.workloads.{WEB}"])
        config = web_v1.runtimeConfig
    else:
        desired = pb.State()
        desired.CopyFrom(server.desired)
        web = desired.workloads["webserver"]
        web.runtimeConfig = web.runtimeConfig.replace("echo serving", "echo serving v2")
        await server.set_state(pb.CompleteState(desiredState=desired), [f"desiredState.workloads.{WEB}"])
        config = web.runtimeConfig
    return hashlib.sha256(config.encode()).hexdigest()


@contextlib.contextmanager
def _agent_process(
    agent: str, port: int, run_folder: Path, env: PodmanEnv, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    # --protocol auto (the default) over plain HTTP/2: the agent probes the server's version.
    cmd = [
        sys.executable, "-m", "ankaios_agent",
        "--name", agent,
        "--server", f"http://127.0.0.1:{port}",
        "--run-folder", str(run_folder),
        "--podman-socket", env.socket_url,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _run(args: argparse.Namespace, env: PodmanEnv, work: Path) -> int:
    server = _make_server(args.protocol, args.agent)
    port = await server.start(args.port)
    log = work / "agent.log"
    printer = StatePrinter(server, args.agent)
    version = "v1.0.1" if args.protocol == "v1" else "v0.3.1"
    print(f"Ankaios {version} server double on 127.0.0.1:{port}; agent {args.agent!r}; agent log: {log}")
    printer.header()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with _agent_process(args.agent, port, work / "run", env, log) as proc:
            scenario = asyncio.create_task(_scenario(server, printer, args))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({scenario, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if scenario.done():
                scenario.result()  # a TimeoutError ends the demo with the agent log's tail
                if not args.once:
                    watcher = asyncio.create_task(
                        _phase(server, printer, stop.is_set, "running; press Ctrl-C to stop")
                    )
                    await stopper
                    watcher.cancel()
            else:
                scenario.cancel()
            print("\n--- stopping the agent (SIGTERM): workloads keep running, as on a real node", flush=True)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 10)
            print(f"agent exited with code {code}")
            return 0 if code == 0 else 1
    except TimeoutError:
        print(f"\ndemo: timed out; last lines of {log}:", file=sys.stderr)
        print("\n".join(log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
        return 1
    finally:
        await server.stop()


async def _scenario(server: Server, printer: StatePrinter, args: argparse.Namespace) -> None:
    settled = SETTLED_V1 if isinstance(server, ServerDoubleV1) else SETTLED
    async with asyncio.timeout(args.timeout):
        await _phase(
            server, printer, lambda: _shows(server, args.agent, settled), "starting the sample state"
        )
    new_id = await _update_webserver(server)

    def updated() -> bool:
        # The old instance's row is gone (Removed) and the new one runs.
        rows = {i.id: s.display for i, s in server.states.items() if i.workload == "webserver"}
        return rows == {new_id: "Running(Ok)"}

    async with asyncio.timeout(args.timeout):
        await _phase(server, printer, updated, "updating webserver (changed runtimeConfig)")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ank-demo-"))
    (work / "run" / f"{args.agent}_io").mkdir(parents=True)
    label = f"agent={args.agent}"
    try:
        with podman_environment() as env:
            try:
                return asyncio.run(_run(args, env, work))
            finally:
                print(f"removing the demo's containers ({label}) and {work}")
                env.remove_by_label(label)
    except PodmanUnavailable as exc:
        print(f"demo: Podman cannot be used here: {exc} (see README, Troubleshooting)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
