"""Logs and load reports of the whole agent (``run_agent`` + ``assemble``) against the v1.0.1
server double over gRPC on loopback, with real Podman containers.

The double plays the CLI: ``request_logs`` starts a campaign like ``ank logs`` and collects
what the agent answers in ``log_responses``. Covered: a live follow, ``tail`` and ``since``,
a cancel that stops the stream at once and sends nothing more, a deleted workload whose
follow ends with a stop response, instances the agent does not run (nothing is sent for
them), a broken server stream that stops every collection, state reports that get through
while twenty follows run, and a load report every period.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ankaios_agent.agent.app import AgentManager, AppTimings, run_agent
from ankaios_agent.agent.config import AgentConfig, parse_args
from ankaios_agent.agent.manager import Manager
from ankaios_agent.agent.ports import MessageSink
from ankaios_agent.agent.wiring import assemble
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import grpc_api_pb2 as api
from tests.server_double_v1 import ServerDoubleV1
from tests.server_double_v1.state import instance_of, state_from_yaml
from tests.support.podman_env import IMAGE, PodmanEnv

pytestmark = pytest.mark.podman

SLOW = 60.0  # bounds a hung test only
LOAD_PERIOD = 0.5


def _workload(name: str, agent: str, script: str) -> str:
    return (
        f"  {name}:\n    runtime: podman\n    agent: {agent}\n"
        f'    runtimeConfig: |\n      image: {IMAGE}\n      commandArgs: ["sh", "-c", {script!r}]\n'
    )


def _manifest(agent: str, *workloads: str) -> str:
    return "apiVersion: v0.1\nworkloads:\n" + "".join(workloads)


TICKER = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"
FIVE_LINES = "for i in 1 2 3 4 5; do echo line $i; done; sleep 1000"
EARLY_LATE = "echo early; sleep 4; echo late; sleep 1000"


class Agent:
    """The agent process's main coroutine in this loop; ``manager`` once it is built."""

    def __init__(self, server: ServerDoubleV1, name: str, folder: Path, env: PodmanEnv) -> None:
        args = ["-n", name, "-s", server.address, "-r", str(folder), "--podman-socket", env.socket_url]
        self.config = parse_args(args, {})
        self.manager: Manager | None = None
        self.stop = asyncio.Event()
        timings = AppTimings(load_report_interval=LOAD_PERIOD)
        self.task = asyncio.create_task(
            run_agent(self.config, self._factory, stop=self.stop, timings=timings)
        )

    @asynccontextmanager
    async def _factory(self, config: AgentConfig, sink: MessageSink) -> AsyncIterator[AgentManager]:
        async with assemble(config, sink) as manager:
            assert isinstance(manager, Manager)
            self.manager = manager
            yield manager

    @property
    def logs(self) -> dict[str, tuple[object, ...]]:
        assert self.manager is not None
        return dict(self.manager.logs.active)

    async def close(self) -> int:
        self.stop.set()
        return await asyncio.wait_for(self.task, 10)


@pytest.fixture
def cleanup(podman_env: PodmanEnv, agent_name: str) -> Iterator[None]:
    yield
    podman_env.remove_by_label(f"agent={agent_name}")


@contextlib.asynccontextmanager
async def running(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, *workloads: str
) -> AsyncIterator[tuple[ServerDoubleV1, Agent]]:
    (tmp_path / f"{agent_name}_io").mkdir(exist_ok=True)
    server = ServerDoubleV1(state_from_yaml(_manifest(agent_name, *workloads)))
    await server.start()
    agent = Agent(server, agent_name, tmp_path, podman_env)
    try:
        yield server, agent
    finally:
        with contextlib.suppress(Exception):
            await agent.close()
        await server.stop()


def _name(server: ServerDoubleV1, workload: str) -> base.WorkloadInstanceName:
    found = instance_of(workload, server.rendered_desired.workloads.workloads[workload])
    return base.WorkloadInstanceName(workloadName=found.workload, agentName=found.agent, id=found.id)


def _lines(responses: list[base.Response]) -> list[str]:
    return [
        entry.message
        for r in responses
        if r.WhichOneof("ResponseContent") == "logEntriesResponse"
        for entry in r.logEntriesResponse.logEntries
    ]


def _stops(responses: list[base.Response]) -> list[str]:
    return [
        r.logsStopResponse.workloadName.workloadName
        for r in responses
        if r.WhichOneof("ResponseContent") == "logsStopResponse"
    ]


def _received(
    server: ServerDoubleV1, agent: str, kind: str, request_id: str | None = None
) -> list[api.ToServer]:
    found = [m for m in server.received.get(agent, []) if m.WhichOneof("ToServerEnum") == kind]
    if request_id is None:
        return found
    return [m for m in found if getattr(m, kind).requestId == request_id]


async def _until(server: ServerDoubleV1, predicate: Callable[[], bool]) -> None:
    await server.wait_until(predicate, timeout=SLOW)


async def _barrier(server: ServerDoubleV1, agent_name: str, tag: str) -> None:
    """Everything the agent queued before this point has reached the server afterwards: a new
    workload's Running state travels behind it through the same ordered outbox."""
    await server.apply_manifest(_manifest(agent_name, _workload(tag, agent_name, "sleep 1000")))
    await server.wait_for_state(tag, "Running(Ok)", timeout=SLOW)


async def test_a_follow_is_live_and_a_cancel_stops_it_at_once(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    async with running(podman_env, agent_name, tmp_path, _workload("ticker", agent_name, TICKER)) as (
        server,
        agent,
    ):
        await server.wait_for_state("ticker", "Running(Ok)", timeout=SLOW)
        rid = await server.request_logs([_name(server, "ticker")], follow=True)
        accepted = server.log_responses[rid][0]
        assert [n.workloadName for n in accepted.logsRequestAccepted.workloadNames] == ["ticker"]
        await _until(server, lambda: len(_lines(server.log_responses[rid])) >= 3)
        seen = len(_lines(server.log_responses[rid]))
        # Live: lines the container writes after that still arrive on the same stream.
        await _until(server, lambda: len(_lines(server.log_responses[rid])) >= seen + 5)
        numbers = [int(line.split()[1]) for line in _lines(server.log_responses[rid])]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        assert all(
            e.workloadName.workloadName == "ticker"
            for r in server.log_responses[rid][1:]
            for e in r.logEntriesResponse.logEntries
        )

        await server.cancel_logs(rid)
        await _until(server, lambda: rid not in agent.logs)
        sent_before = len(_received(server, agent_name, "logEntriesResponse", rid))
        await _barrier(server, agent_name, "after-cancel")
        assert len(_received(server, agent_name, "logEntriesResponse", rid)) == sent_before
        assert _received(server, agent_name, "logsStopResponse", rid) == []  # none on cancel


async def test_tail_and_since_give_the_right_lines(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    workloads = (_workload("five", agent_name, FIVE_LINES), _workload("later", agent_name, EARLY_LATE))
    async with running(podman_env, agent_name, tmp_path, *workloads) as (server, _agent):
        await server.wait_for_state("five", "Running(Ok)", timeout=SLOW)
        await server.wait_for_state("later", "Running(Ok)", timeout=SLOW)
        five = _name(server, "five")

        async def read(name: base.WorkloadInstanceName, **options: object) -> list[str]:
            rid = await server.request_logs([name], **options)  # type: ignore[arg-type]
            await _until(server, lambda: _stops(server.log_responses[rid]) == [name.workloadName])
            return _lines(server.log_responses[rid])

        everything: list[str] = []
        while len(everything) < 5:
            everything = await read(five)
        assert everything == [f"line {n}" for n in range(1, 6)]
        assert await read(five, tail=2) == ["line 4", "line 5"]
        assert await read(five, tail=0) == []

        later = _name(server, "later")
        while "early" not in await read(later):
            pass
        cut = datetime.datetime.now(datetime.UTC)
        # Each look is a full request to the agent, not a flag to wait on.
        while "late" not in await read(later):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        assert await read(later, since=cut.isoformat()) == ["late"]
        assert await read(later, tail=-1) == ["early", "late"]


async def test_deleting_the_workload_ends_its_follow_with_a_stop_response(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    async with running(podman_env, agent_name, tmp_path, _workload("ticker", agent_name, TICKER)) as (
        server,
        agent,
    ):
        await server.wait_for_state("ticker", "Running(Ok)", timeout=SLOW)
        rid = await server.request_logs([_name(server, "ticker")], follow=True)
        await _until(server, lambda: len(_lines(server.log_responses[rid])) >= 2)
        await server.delete_workload("ticker")
        await _until(server, lambda: _stops(server.log_responses[rid]) == ["ticker"])
        assert server.log_responses[rid][-1].WhichOneof("ResponseContent") == "logsStopResponse"
        await _until(server, lambda: rid not in agent.logs)


async def test_instances_the_agent_does_not_run_get_no_answer(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    async with running(podman_env, agent_name, tmp_path, _workload("five", agent_name, FIVE_LINES)) as (
        server,
        agent,
    ):
        await server.wait_for_state("five", "Running(Ok)", timeout=SLOW)
        # The server keeps only names it knows: a made-up one is not even asked for.
        ghost = base.WorkloadInstanceName(workloadName="ghost", agentName=agent_name, id="0" * 64)
        rid = await server.request_logs([ghost, _name(server, "five")])
        accepted = server.log_responses[rid][0].logsRequestAccepted.workloadNames
        assert [n.workloadName for n in accepted] == ["five"]
        await _until(server, lambda: _stops(server.log_responses[rid]) == ["five"])
        # Asked directly (as a server whose state lags would), the agent sends nothing for it.
        direct = "cli-conn-ghost@1"
        request = api.LogsRequest(requestId=direct, logsRequest=base.LogsRequest(workloadNames=[ghost]))
        await server.send(agent_name, api.FromServer(logsRequest=request))
        await server.send(
            agent_name, api.FromServer(logsCancelRequest=api.LogsCancelRequest(requestId="nobody"))
        )
        await _barrier(server, agent_name, "after-ghost")
        assert _received(server, agent_name, "logEntriesResponse", direct) == []
        assert _received(server, agent_name, "logsStopResponse", direct) == []
        assert agent.logs == {}


async def test_a_broken_server_stream_stops_every_collection(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    async with running(podman_env, agent_name, tmp_path, _workload("ticker", agent_name, TICKER)) as (
        server,
        agent,
    ):
        await server.wait_for_state("ticker", "Running(Ok)", timeout=SLOW)
        rid = await server.request_logs([_name(server, "ticker")], follow=True)
        await _until(server, lambda: len(_lines(server.log_responses[rid])) >= 2)
        assert rid in agent.logs
        await server.restart(down_for=0.3)  # every stream breaks with an error
        await server.wait_for_agent(agent_name, timeout=SLOW)
        assert agent.logs == {}
        assert await agent.close() == 0


async def test_states_get_through_while_twenty_follows_run(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    async with running(podman_env, agent_name, tmp_path, _workload("ticker", agent_name, TICKER)) as (
        server,
        agent,
    ):
        await server.wait_for_state("ticker", "Running(Ok)", timeout=SLOW)
        ids = [await server.request_logs([_name(server, "ticker")], follow=True) for _ in range(20)]
        await _until(server, lambda: all(len(_lines(server.log_responses[r])) >= 2 for r in ids))
        await server.apply_manifest(_manifest(agent_name, _workload("other", agent_name, "sleep 1000")))
        await server.wait_for_state("other", "Running(Ok)", timeout=SLOW)
        # The follows were still running when the state came: it did not wait for them to end.
        assert len(agent.logs) == 20
        assert all(not _stops(server.log_responses[r]) for r in ids)
        # And they keep delivering afterwards.
        counts = {r: len(_lines(server.log_responses[r])) for r in ids}
        await _until(server, lambda: all(len(_lines(server.log_responses[r])) > counts[r] for r in ids))


async def test_load_status_arrives_every_period_with_plausible_figures(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    async with running(podman_env, agent_name, tmp_path) as (server, _agent):
        await server.wait_for_agent(agent_name, timeout=SLOW)
        await _until(server, lambda: len(_received(server, agent_name, "AgentLoadStatus")) >= 4)
        reports = [m.AgentLoadStatus for m in _received(server, agent_name, "AgentLoadStatus")]
        assert all(r.agent_name == agent_name for r in reports)
        assert all(0 <= r.cpu_usage.cpu_usage <= 100 for r in reports)
        assert all(r.free_memory.free_memory > 0 for r in reports)
        status = server.agents[agent_name].status
        assert status.free_memory.free_memory > 0


async def test_a_workload_with_a_log_rule_follows_another_workloads_log_through_its_control_interface(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    """The whole path: workload -> its control interface -> agent -> server -> the providing
    agent's collector -> server -> agent -> the workload's ``input``, with the workload's own id."""
    from ankaios_agent.control_interface.framing import frame  # noqa: PLC0415
    from ankaios_agent.proto import control_api_pb2 as ctl  # noqa: PLC0415
    from tests.integration.fifo_client import OutputWriter, V1InputReader  # noqa: PLC0415

    reader_workload = (
        f"  reader:\n    runtime: podman\n    agent: {agent_name}\n"
        "    controlInterfaceAccess:\n      allowRules:\n"
        '        - type: LogRule\n          workloadNames: ["ticker"]\n'
        f'    runtimeConfig: |\n      image: {IMAGE}\n      commandArgs: ["sleep", "1000"]\n'
    )
    async with running(
        podman_env, agent_name, tmp_path, _workload("ticker", agent_name, TICKER), reader_workload
    ) as (server, _agent):
        for name in ("ticker", "reader"):
            await server.wait_for_state(name, "Running(Ok)", timeout=SLOW)
        reader_id = _name(server, "reader").id
        folder = tmp_path / f"{agent_name}_io" / f"reader.{reader_id}" / "control_interface"
        inbox, outbox = V1InputReader(folder), OutputWriter(folder)
        try:
            outbox.write(frame(ctl.ToAnkaios(hello=ctl.Hello(protocolVersion="1.0.1")).SerializeToString()))
            accepted = await asyncio.wait_for(inbox.next_message(), SLOW)
            assert accepted.WhichOneof("FromAnkaiosEnum") == "controlInterfaceAccepted"
            request = base.Request(
                requestId="follow-1",
                logsRequest=base.LogsRequest(workloadNames=[_name(server, "ticker")], follow=True),
            )
            outbox.write(frame(ctl.ToAnkaios(request=request).SerializeToString()))
            seen: list[str] = []
            while len(seen) < 3:
                message = await asyncio.wait_for(inbox.next_message(), SLOW)
                assert message.response.requestId == "follow-1"
                kind = message.response.WhichOneof("ResponseContent")
                assert kind in ("logsRequestAccepted", "logEntriesResponse"), kind
                if kind == "logEntriesResponse":
                    entries = message.response.logEntriesResponse.logEntries
                    assert {e.workloadName.workloadName for e in entries} == {"ticker"}
                    seen += [e.message for e in entries]
            assert all(line.startswith("tick ") for line in seen)
        finally:
            outbox.close()
            inbox.close()
