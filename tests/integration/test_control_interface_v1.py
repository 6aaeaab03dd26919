"""The v1.0.1 control interface on real FIFOs: layout, handshake, authorization, routing."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import (
    AccessRules,
    InstanceName,
    Operation,
    Request,
    Response,
    StateRule,
    WorkloadSpec,
)
from ankaios_agent.control_interface import ControlInterfaceHost, RelaySettings
from ankaios_agent.control_interface.codec import DropReason
from ankaios_agent.control_interface.framing import frame
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import control_api_pb2 as ctl
from tests.integration.fifo_client import OutputWriter, V1InputReader, wait_until

ID = "b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910"
SETTINGS = RelaySettings(buffer_size=8, open_retry_min=0.001, open_retry_max=0.02)
READ_ALL = AccessRules(allow=(StateRule(Operation.READ, ("*",)),))


def spec(workload: str = "wl", rules: AccessRules = READ_ALL, id_: str = ID) -> WorkloadSpec:
    return WorkloadSpec(
        instance=InstanceName(workload, "agent_A", id_),
        runtime="podman",
        runtime_config="image: x",
        control_interface_access=rules,
    )


def hello(version: str = "1.0.0") -> bytes:
    return frame(ctl.ToAnkaios(hello=ctl.Hello(protocolVersion=version)).SerializeToString())


def get_state(request_id: str, *masks: str) -> bytes:
    request = base.Request(
        requestId=request_id, completeStateRequest=base.CompleteStateRequest(fieldMask=list(masks))
    )
    return frame(ctl.ToAnkaios(request=request).SerializeToString())


def update_state(request_id: str, *masks: str) -> bytes:
    inner = base.UpdateStateRequest(updateMask=list(masks))
    inner.newState.desiredState.apiVersion = "v1"
    return frame(
        ctl.ToAnkaios(
            request=base.Request(requestId=request_id, updateStateRequest=inner)
        ).SerializeToString()
    )


def state_body(marker: str) -> bytes:
    state = base.CompleteState(
        desiredState=base.State(
            apiVersion="v1", workloads=base.WorkloadMap(workloads={marker: base.Workload()})
        )
    )
    return base.Response(
        completeStateResponse=base.CompleteStateResponse(completeState=state)
    ).SerializeToString()


class Forwarded:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Request] = asyncio.Queue()

    def __call__(self, request: Request) -> None:
        self.queue.put_nowait(request)


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[tuple[ControlInterfaceHost, Forwarded]]:
    forwarded = Forwarded()
    cis = ControlInterfaceHost(tmp_path / "agent_A_io", forwarded, SETTINGS)
    cis.use_dialect(Dialect.V1)
    yield cis, forwarded
    await cis.close()


async def test_no_allow_rules_no_folder(host: tuple[ControlInterfaceHost, Forwarded]) -> None:
    cis, _ = host
    deny_only = AccessRules(deny=(StateRule(Operation.READ, ("*",)),))
    assert await cis.ensure_for(spec(rules=AccessRules())) is None
    assert await cis.ensure_for(spec(rules=deny_only)) is None
    assert not (cis.io_folder / f"wl.{ID}").exists()
    assert cis.workloads == frozenset()


async def test_folder_layout_and_modes(host: tuple[ControlInterfaceHost, Forwarded]) -> None:
    cis, _ = host
    folder = await cis.ensure_for(spec())
    assert folder == cis.io_folder / f"wl.{ID}" / "control_interface"
    for name in ("input", "output"):
        info = os.lstat(folder / name)
        assert stat.S_ISFIFO(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
    assert await cis.ensure_for(spec()) == folder  # idempotent


async def test_handshake_then_responses_in_order(host: tuple[ControlInterfaceHost, Forwarded]) -> None:
    """A response routed before the hello waits, so the acceptance is the first frame."""
    cis, forwarded = host
    folder = await cis.ensure_for(spec())
    assert folder is not None
    reader = V1InputReader(folder)
    writer = OutputWriter(folder)
    cis.route(Response("wl@early", state_body("early")))
    writer.write(hello())
    first = await reader.next_message()
    assert first.WhichOneof("FromAnkaiosEnum") == "controlInterfaceAccepted"
    early = await reader.next_message()
    assert early.response.requestId == "early"

    writer.write(get_state("r1", "desiredState.workloads"))
    request = await forwarded.queue.get()
    assert request.request_id == "wl@r1"
    assert list(base.Request.FromString(request.body).completeStateRequest.fieldMask) == [
        "desiredState.workloads"
    ]
    cis.route(Response("wl@r1", state_body("nginx")))
    answer = await reader.next_message()
    assert answer.response.requestId == "r1"
    assert list(answer.response.completeStateResponse.completeState.desiredState.workloads.workloads) == [
        "nginx"
    ]

    writer.write(update_state("u1", "desiredState.workloads.x"))
    denied = await reader.next_message()
    assert denied.response.requestId == "u1"
    assert denied.response.error.message == "Access denied"
    assert forwarded.queue.empty()
    counters = cis.counters("wl")
    assert counters is not None and counters.requests_answered == 1 and counters.requests_forwarded == 1

    writer.write(hello("1.2.3"))  # tolerated, not answered
    await wait_until(lambda: counters.requests_dropped.get(DropReason.REPEATED_HELLO) == 1)
    assert not reader.has_more()
    writer.close()
    reader.close()


async def test_missing_hello_closes_until_the_writer_reconnects(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    cis, forwarded = host
    folder = await cis.ensure_for(spec())
    assert folder is not None
    reader = V1InputReader(folder)
    writer = OutputWriter(folder)
    writer.write(get_state("r1"))
    closed = await reader.next_message()
    assert closed.connectionClosed.reason == "Initial Hello missing!"
    cis.route(Response("wl@late", state_body("late")))
    writer.write(hello())  # ignored: the session is closed until the writer goes away
    counters = cis.counters("wl")
    assert counters is not None
    await wait_until(lambda: counters.requests_dropped.get(DropReason.AFTER_CLOSE) == 1)
    assert counters.responses_dropped_session_closed == 1
    writer.close()
    # A new writer that comes before the relay saw the old one go cannot be told apart from it.
    await wait_until(lambda: counters.writers_left == 1)
    writer = OutputWriter(folder)
    writer.write(hello())
    accepted = await reader.next_message()
    assert accepted.WhichOneof("FromAnkaiosEnum") == "controlInterfaceAccepted"
    assert forwarded.queue.empty()
    writer.close()
    reader.close()


async def test_wrong_version_and_garbage_close_with_the_reference_reasons(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    cis, _ = host
    folder = await cis.ensure_for(spec())
    assert folder is not None
    reader = V1InputReader(folder)
    writer = OutputWriter(folder)
    writer.write(hello("2.0.0"))
    closed = await reader.next_message()
    assert closed.connectionClosed.reason == "Unsupported protocol version '2.0.0'. Currently supported '1'"
    writer.close()
    counters = cis.counters("wl")
    assert counters is not None
    await wait_until(lambda: counters.writers_left == 1)
    writer = OutputWriter(folder)
    writer.write(b"\xff" * 12)  # a length prefix longer than any varint
    closed = await reader.next_message()
    assert closed.connectionClosed.reason == "Could not decode protobuf data"
    writer.close()
    reader.close()


async def test_changed_rules_replace_the_fifos_and_no_rules_remove_them(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    cis, _ = host
    folder = await cis.ensure_for(spec())
    assert folder is not None
    old = cis.counters("wl")
    write_too = AccessRules(allow=(StateRule(Operation.READ_WRITE, ("*",)),))
    assert await cis.ensure_for(spec(rules=write_too)) == folder
    assert cis.counters("wl") is not old
    # Made afresh (not reused), so the new session is strict about its first frame.
    reader = V1InputReader(folder)
    writer = OutputWriter(folder)
    writer.write(get_state("r"))
    assert (await reader.next_message()).connectionClosed.reason == "Initial Hello missing!"
    writer.close()
    reader.close()
    assert await cis.ensure_for(spec(rules=AccessRules())) is None
    assert not folder.exists()
    assert cis.workloads == frozenset()


async def test_fifos_that_outlived_the_agent_skip_leftovers_before_the_hello(tmp_path: Path) -> None:
    """The workload keeps its ends open across an agent restart; what it wrote meanwhile is stale."""
    forwarded = Forwarded()
    first = ControlInterfaceHost(tmp_path / "io", forwarded, SETTINGS, dialect=Dialect.V1)
    folder = await first.ensure_for(spec())
    assert folder is not None
    reader = V1InputReader(folder)
    writer = OutputWriter(folder)
    writer.write(hello())
    assert (await reader.next_message()).WhichOneof("FromAnkaiosEnum") == "controlInterfaceAccepted"
    # The dying agent's read end is still open when the workload writes once more ...
    dying = os.open(folder / "output", os.O_RDONLY | os.O_NONBLOCK)
    await first.close()
    writer.write(get_state("stale"))
    # ... and the bytes stay in the pipe for the next agent, which reads the same FIFO.
    second = ControlInterfaceHost(tmp_path / "io", forwarded, SETTINGS, dialect=Dialect.V1)
    assert await second.ensure_for(spec()) == folder
    os.close(dying)
    writer.write(hello())
    message = await reader.next_message()
    assert message.WhichOneof("FromAnkaiosEnum") == "controlInterfaceAccepted"
    writer.write(get_state("fresh"))
    assert (await forwarded.queue.get()).request_id == "wl@fresh"
    counters = second.counters("wl")
    assert counters is not None and counters.requests_dropped == {DropReason.BEFORE_HELLO: 1}
    await second.close()
    writer.close()
    reader.close()


async def test_v0_3_session_keeps_its_layout_for_every_workload(tmp_path: Path) -> None:
    cis = ControlInterfaceHost(tmp_path / "io", Forwarded(), SETTINGS)
    assert cis.dialect is Dialect.V0_3
    assert await cis.ensure_for(spec(rules=AccessRules())) == tmp_path / "io" / f"wl.{ID}"
    cis.use_dialect(Dialect.V1)
    assert await cis.ensure_for(spec("other", AccessRules())) is None
    await cis.close()


async def test_log_entries_nobody_reads_stop_their_collection_once(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    cis, forwarded = host
    folder = await cis.ensure_for(spec())
    assert folder is not None
    writer = OutputWriter(folder)
    writer.write(hello())
    counters = cis.counters("wl")
    assert counters is not None
    await wait_until(lambda: counters.handshakes_accepted == 1)
    entries = base.Response(
        logEntriesResponse=base.LogEntriesResponse(logEntries=[base.LogEntry(message="line")])
    ).SerializeToString()
    for _ in range(SETTINGS.buffer_size):
        cis.route(Response("wl@state", state_body("x")))  # dropped too, but nothing to stop
    assert forwarded.queue.empty()
    for _ in range(3 * SETTINGS.buffer_size):
        cis.route(Response("wl@logs-1", entries))
    assert counters.responses_dropped_buffer_full > SETTINGS.buffer_size
    cancel = forwarded.queue.get_nowait()
    assert cancel.request_id == "wl@logs-1"
    assert base.Request.FromString(cancel.body).WhichOneof("RequestContent") == "logsCancelRequest"
    assert forwarded.queue.empty()  # once per collection, not once per dropped entry
    writer.close()


@pytest.mark.parametrize(("strict", "forwarded_expected"), [(False, True), (True, False)])
async def test_request_wildcard_past_a_deny_rule_only_in_the_reference_mode(
    tmp_path: Path, strict: bool, forwarded_expected: bool
) -> None:
    """By default the agent decides as the reference does, hole included: with allow
    ``desiredState.workloads`` and deny ``desiredState.workloads.secret`` the mask
    ``desiredState.workloads.*`` is forwarded. ``--strict-authorization`` refuses it."""
    forwarded = Forwarded()
    cis = ControlInterfaceHost(tmp_path / "agent_A_io", forwarded, SETTINGS, strict_authorization=strict)
    cis.use_dialect(Dialect.V1)
    rules = AccessRules(
        allow=(StateRule(Operation.READ, ("desiredState.workloads",)),),
        deny=(StateRule(Operation.READ, ("desiredState.workloads.secret",)),),
    )
    try:
        folder = await cis.ensure_for(spec(rules=rules))
        assert folder is not None
        reader, writer = V1InputReader(folder), OutputWriter(folder)
        writer.write(hello())
        assert (await reader.next_message()).WhichOneof("FromAnkaiosEnum") == "controlInterfaceAccepted"
        writer.write(get_state("w", "desiredState.workloads.*"))
        if forwarded_expected:
            request = await forwarded.queue.get()
            assert request.request_id == "wl@w"
        else:
            denied = await reader.next_message()
            assert denied.response.requestId == "w"
            assert denied.response.error.message == "Access denied"
            assert forwarded.queue.empty()
        writer.close()
        reader.close()
    finally:
        await cis.close()
