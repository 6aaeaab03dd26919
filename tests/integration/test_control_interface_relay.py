"""ControlInterfaceHost with real FIFOs and a host-side workload double."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ankaios_agent import control_interface
from ankaios_agent.agent.errors import ControlInterfaceError
from ankaios_agent.agent.model import CompleteStateRequest, InstanceName, Request, Response
from ankaios_agent.agent.outbox import Outbox
from ankaios_agent.agent.wire_format import encode_varint
from ankaios_agent.control_interface import ControlInterfaceHost, RelaySettings
from ankaios_agent.control_interface.codec import DropReason
from ankaios_agent.control_interface.framing import frame
from ankaios_agent.proto import ankaios_pb2 as pb
from tests.integration.fifo_client import InputReader, OutputWriter, request_frame, wait_until

ID = "b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910"
SETTINGS = RelaySettings(buffer_size=4, open_retry_min=0.001, open_retry_max=0.02)


def inst(workload: str, id_: str = ID) -> InstanceName:
    return InstanceName(workload=workload, agent="agent_A", id=id_)


def complete_state_body(marker: str) -> bytes:
    """A Response body (no id) whose content lets the test recognise it."""
    state = pb.CompleteState(desiredState=pb.State(apiVersion="v0.1", workloads={marker: pb.Workload()}))
    return pb.Response(completeState=state).SerializeToString()


class Forwarded:
    """The forward callback: what the relay hands to the server side."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Request] = asyncio.Queue()

    def __call__(self, request: Request) -> None:
        self.queue.put_nowait(request)

    async def next(self) -> Request:
        return await self.queue.get()


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[tuple[ControlInterfaceHost, Forwarded]]:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)  # a blocking call in a relay callback shows up as a slow-callback warning
    loop.slow_callback_duration = 0.05
    forwarded = Forwarded()
    cis = ControlInterfaceHost(tmp_path / "agent_A_io", forwarded, SETTINGS)
    yield cis, forwarded
    await cis.close()


def test_public_surface_is_pinned() -> None:
    assert control_interface.__all__ == [
        "Codec",
        "CodecV0_3_1",
        "ControlInterfaceHost",
        "RelayCounters",
        "RelaySettings",
    ]


async def test_round_trip_prefixes_request_and_strips_prefix_from_response(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    """The request id gets '<workload>@'; the response comes back without it."""
    cis, forwarded = host
    folder = await cis.ensure(inst("wl"))
    assert folder == cis.io_folder / f"wl.{ID}"
    reader = InputReader(folder)
    writer = OutputWriter(folder)
    writer.write(request_frame("42", ("desiredState.workloads",)))
    request = await forwarded.next()
    assert request.request_id == "wl@42"
    assert request.content == CompleteStateRequest(("desiredState.workloads",))

    cis.route(Response(request_id="wl@42", body=complete_state_body("nginx")))
    response = await reader.next_response()
    assert response.requestId == "42"
    assert list(response.completeState.desiredState.workloads) == ["nginx"]
    writer.close()
    reader.close()


async def test_empty_request_id_is_still_prefixed(host: tuple[ControlInterfaceHost, Forwarded]) -> None:
    """An empty id becomes '<workload>@'."""
    cis, forwarded = host
    writer = OutputWriter(await cis.ensure(inst("wl")))
    writer.write(request_frame(""))
    assert (await forwarded.next()).request_id == "wl@"
    writer.close()


async def test_responses_route_by_text_before_first_at(host: tuple[ControlInterfaceHost, Forwarded]) -> None:
    """Split at the first '@', further '@' stay in the id the workload sees."""
    cis, _ = host
    reader_a = InputReader(await cis.ensure(inst("a")))
    reader_b = InputReader(await cis.ensure(inst("b")))
    cis.route(Response(request_id="b@x@y", body=complete_state_body("for-b")))
    cis.route(Response(request_id="a@1", body=complete_state_body("for-a")))
    got_b = await reader_b.next_response()
    got_a = await reader_a.next_response()
    assert (got_b.requestId, list(got_b.completeState.desiredState.workloads)) == ("x@y", ["for-b"])
    assert (got_a.requestId, list(got_a.completeState.desiredState.workloads)) == ("1", ["for-a"])
    reader_a.close()
    reader_b.close()


async def test_unknown_prefix_is_dropped_and_counted(host: tuple[ControlInterfaceHost, Forwarded]) -> None:
    """Unknown prefix or no '@' at all → warning, dropped, counted; nothing raises."""
    cis, _ = host
    await cis.ensure(inst("a"))
    cis.route(Response(request_id="ghost@1", body=complete_state_body("x")))
    cis.route(Response(request_id="no-separator", body=complete_state_body("x")))
    assert cis.unroutable_responses == 2


async def test_non_request_messages_are_dropped_and_the_stream_goes_on(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    """Hello, goodbye, states and empty frames are dropped, counted, never fatal."""
    cis, forwarded = host
    writer = OutputWriter(await cis.ensure(inst("wl")))
    for message in (
        pb.ToServer(agentHello=pb.AgentHello(agentName="evil")),
        pb.ToServer(goodbye=pb.Goodbye()),
        pb.ToServer(updateWorkloadState=pb.UpdateWorkloadState()),
        pb.ToServer(),
        pb.ToServer(request=pb.Request(requestId="no-content")),
    ):
        writer.write(frame(message.SerializeToString()))
    writer.write(frame(b"\xff\xff\xff"))
    writer.write(request_frame("after"))
    assert (await forwarded.next()).request_id == "wl@after"
    assert forwarded.queue.empty()
    counters = cis.counters("wl")
    assert counters is not None
    assert counters.requests_dropped == {
        DropReason.AGENT_HELLO: 1,
        DropReason.GOODBYE: 1,
        DropReason.UPDATE_WORKLOAD_STATE: 1,
        DropReason.EMPTY: 1,
        DropReason.REQUEST_WITHOUT_CONTENT: 1,
        DropReason.UNDECODABLE: 1,
    }
    assert counters.requests_forwarded == 1
    writer.close()


async def test_workload_that_never_reads_input_keeps_forwarding_and_drops_oldest(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    """A non-reading workload costs bounded memory and never stops its requests."""
    cis, forwarded = host
    folder = await cis.ensure(inst("deaf"))
    writer = OutputWriter(folder)
    for i in range(10):
        cis.route(Response(request_id=f"deaf@{i}", body=complete_state_body(f"r{i}")))
        writer.write(request_frame(f"q{i}"))
        assert (await forwarded.next()).request_id == f"deaf@q{i}"
    counters = cis.counters("deaf")
    assert counters is not None
    assert counters.responses_dropped_buffer_full == 10 - SETTINGS.buffer_size
    # When the workload finally reads, it gets the newest responses, in order.
    reader = InputReader(folder)
    ids = [(await reader.next_response()).requestId for _ in range(SETTINGS.buffer_size)]
    assert ids == ["6", "7", "8", "9"]
    writer.close()
    reader.close()


async def test_writer_that_disappears_mid_frame_loses_only_that_frame(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    """EOF → the partial frame is dropped (counted) and the next writer starts clean."""
    cis, forwarded = host
    folder = await cis.ensure(inst("wl"))
    writer = OutputWriter(folder)
    whole = request_frame("first")
    writer.write(whole + request_frame("cut")[:5])
    assert (await forwarded.next()).request_id == "wl@first"
    writer.close()
    counters = cis.counters("wl")
    assert counters is not None
    await wait_until(lambda: counters.truncated_frames == 1)
    writer = OutputWriter(folder)
    writer.write(request_frame("second"))
    assert (await forwarded.next()).request_id == "wl@second"
    assert forwarded.queue.empty()
    writer.close()


async def test_corrupt_stream_is_ignored_until_the_writer_reopens(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    """A frame above 4 MiB marks the stream corrupt; the next writer is served normally."""
    cis, forwarded = host
    folder = await cis.ensure(inst("wl"))
    writer = OutputWriter(folder)
    writer.write(request_frame("before") + encode_varint(5 * 1024 * 1024) + request_frame("swallowed"))
    assert (await forwarded.next()).request_id == "wl@before"
    counters = cis.counters("wl")
    assert counters is not None
    await wait_until(lambda: counters.corrupt_streams == 1)
    writer.write(request_frame("still-ignored"))
    writer.close()
    await wait_until(lambda: counters.truncated_frames == 0 and _output_reopened(cis, "wl"))
    writer = OutputWriter(folder)
    writer.write(request_frame("after"))
    assert (await forwarded.next()).request_id == "wl@after"
    assert counters.requests_forwarded == 2
    writer.close()


def _output_reopened(cis: ControlInterfaceHost, workload: str) -> bool:
    relay = cis._relays[workload]
    return not relay.output._discarding


async def test_reader_that_disappears_mid_response_gets_it_again_in_full(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    """EPIPE (reader gone) → reopen and write the whole message again."""
    cis, _ = host
    folder = await cis.ensure(inst("wl"))
    # Bigger than the pipe buffer, so the write is necessarily cut.
    big = complete_state_body("x" * 300_000)
    first = InputReader(folder, collect=False)
    await wait_until(lambda: cis._relays["wl"].input._in_fd is not None)
    cis.route(Response(request_id="wl@big", body=big))
    counters = cis.counters("wl")
    assert counters is not None
    await wait_until(lambda: cis._relays["wl"].input._offset > 0)  # the pipe is full, the rest waits
    assert first.read_raw(100)
    first.close()
    await wait_until(lambda: counters.responses_rewritten == 1)
    second = InputReader(folder)
    response = await second.next_response()
    assert response.requestId == "big"
    assert list(response.completeState.desiredState.workloads) == ["x" * 300_000]
    second.close()


async def test_response_for_a_reader_that_just_left_waits_for_the_next_one(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    """A write that finds no reader (EPIPE) before the loop saw it leave keeps the response."""
    cis, _ = host
    folder = await cis.ensure(inst("wl"))
    first = InputReader(folder, collect=False)
    relay = cis._relays["wl"]
    await wait_until(lambda: relay.input._in_fd is not None)
    first.close()
    # No loop iteration in between: the relay still holds the write end and writes at once.
    cis.route(Response(request_id="wl@late", body=complete_state_body("nginx")))
    counters = cis.counters("wl")
    assert counters is not None
    assert counters.responses_written == 0
    second = InputReader(folder)
    response = await second.next_response()
    assert response.requestId == "late"
    assert list(response.completeState.desiredState.workloads) == ["nginx"]
    assert counters.responses_written == 1
    assert counters.responses_dropped_buffer_full == 0
    second.close()


@pytest.mark.parametrize(
    ("workload", "id_"),
    [("", ID), (".", ID), ("..", ID), ("a/b", ID), ("../../etc", ID), ("nul\0byte", ID), ("ok", "x/../../y")],
)
async def test_names_that_leave_the_io_folder_are_refused_without_touching_files(
    tmp_path: Path, workload: str, id_: str
) -> None:
    """Such a workload is refused with a reason; the file system is untouched."""
    io = tmp_path / "agent_A_io"
    cis = ControlInterfaceHost(io, Forwarded(), SETTINGS)
    with pytest.raises(ControlInterfaceError) as err:
        await cis.ensure(inst(workload, id_))
    assert err.value.workload == workload
    assert not io.exists()
    await cis.remove(workload)  # harmless, still nothing touched
    assert not io.exists()


async def test_fifos_are_private_and_existing_ones_are_reused(tmp_path: Path) -> None:
    """Existing FIFOs are reused (agent restart); modes tightened, never world-writable."""
    io = tmp_path / "agent_A_io"
    folder = io / f"wl.{ID}"
    folder.mkdir(parents=True, mode=0o777)
    os.chmod(folder, 0o777)
    os.mkfifo(folder / "input", 0o666)
    os.chmod(folder / "input", 0o666)
    inode = os.stat(folder / "input").st_ino
    cis = ControlInterfaceHost(io, Forwarded(), SETTINGS)
    assert await cis.ensure(inst("wl")) == folder
    assert os.stat(folder / "input").st_ino == inode
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    for name in ("input", "output"):
        mode = os.lstat(folder / name).st_mode
        assert stat.S_ISFIFO(mode)
        assert stat.S_IMODE(mode) == 0o600
    await cis.close()
    assert (folder / "output").exists(), "close() keeps the files for the running containers"


async def test_something_else_in_place_of_a_fifo_is_an_error(tmp_path: Path) -> None:
    io = tmp_path / "agent_A_io"
    folder = io / f"wl.{ID}"
    folder.mkdir(parents=True)
    (folder / "output").write_text("not a fifo")
    cis = ControlInterfaceHost(io, Forwarded(), SETTINGS)
    with pytest.raises(ControlInterfaceError, match="not a FIFO"):
        await cis.ensure(inst("wl"))
    assert (folder / "output").read_text() == "not a fifo"


async def test_remove_deletes_fifos_folder_and_leftovers_of_other_ids(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    """Remove unlinks input, output and the folder; routing to it stops."""
    cis, _ = host
    leftover = cis.io_folder / "wl.0123abcd"
    leftover.mkdir(parents=True)
    os.mkfifo(leftover / "input")
    other = cis.io_folder / f"wl.x.{ID}"  # workload "wl.x": must survive
    other.mkdir()
    folder = await cis.ensure(inst("wl"))
    reader = InputReader(folder)
    await cis.remove("wl")
    assert not folder.exists()
    assert not leftover.exists()
    assert other.exists()
    cis.route(Response(request_id="wl@1", body=complete_state_body("x")))
    assert cis.unroutable_responses == 1
    reader.close()


async def test_remove_leaves_a_folder_holding_foreign_files(
    host: tuple[ControlInterfaceHost, Forwarded],
) -> None:
    cis, _ = host
    folder = await cis.ensure(inst("wl"))
    (folder / "notes.txt").write_text("keep me")
    await cis.remove("wl")
    assert (folder / "notes.txt").read_text() == "keep me"
    assert not (folder / "input").exists()


async def test_new_id_moves_the_control_interface(host: tuple[ControlInterfaceHost, Forwarded]) -> None:
    """An id change moves the FIFOs; responses follow the workload name."""
    cis, forwarded = host
    old = await cis.ensure(inst("wl"))
    assert await cis.ensure(inst("wl")) == old  # idempotent
    new = await cis.ensure(inst("wl", "beef"))
    assert new != old
    assert not old.exists()
    writer = OutputWriter(new)
    writer.write(request_frame("n"))
    assert (await forwarded.next()).request_id == "wl@n"
    writer.close()


async def test_one_deaf_workload_does_not_delay_another(host: tuple[ControlInterfaceHost, Forwarded]) -> None:
    """Workloads are independent: a full buffer at one does not touch the other."""
    cis, _ = host
    await cis.ensure(inst("deaf"))
    reader = InputReader(await cis.ensure(inst("ok")))
    for i in range(50):
        cis.route(Response(request_id=f"deaf@{i}", body=complete_state_body("x")))
    cis.route(Response(request_id="ok@1", body=complete_state_body("y")))
    assert (await reader.next_response()).requestId == "1"
    reader.close()


async def test_a_partly_written_response_is_never_dropped_for_a_newer_one(tmp_path: Path) -> None:
    """Drop-oldest skips the frame on the wire, which would corrupt the stream."""
    settings = RelaySettings(buffer_size=2, open_retry_min=0.001, open_retry_max=0.02)
    cis = ControlInterfaceHost(tmp_path / "io", Forwarded(), settings)
    folder = await cis.ensure(inst("wl"))
    slow = InputReader(folder, collect=False)
    relay = cis._relays["wl"]
    await wait_until(lambda: relay.input._in_fd is not None)
    cis.route(Response(request_id="wl@big", body=complete_state_body("x" * 200_000)))
    await wait_until(lambda: relay.input._offset > 0)  # cut: the pipe is full
    for i in range(5):
        cis.route(Response(request_id=f"wl@{i}", body=complete_state_body("small")))
    counters = cis.counters("wl")
    assert counters is not None
    assert counters.responses_dropped_buffer_full == 3
    head = slow.read_raw(65536)
    slow.close()  # this reader dies holding part of "big"
    await wait_until(lambda: counters.responses_rewritten == 1)
    reader = InputReader(folder)
    ids = [(await reader.next_response()).requestId for _ in range(3)]
    assert head
    assert ids == ["big", "3", "4"]
    reader.close()
    await cis.close()


async def test_restarted_agent_serves_a_writer_that_kept_output_open(tmp_path: Path) -> None:
    """FIFOs survive an agent restart; a running workload goes on talking."""
    io = tmp_path / "io"
    first = ControlInterfaceHost(io, Forwarded(), SETTINGS)
    folder = await first.ensure(inst("wl"))
    writer = OutputWriter(folder)  # the container keeps its write end across the restart
    await first.close()
    forwarded = Forwarded()
    second = ControlInterfaceHost(io, forwarded, SETTINGS)
    assert await second.ensure(inst("wl")) == folder
    writer.write(request_frame("after-restart"))
    assert (await forwarded.next()).request_id == "wl@after-restart"
    writer.close()
    await second.close()


async def test_fifo_replaced_by_a_regular_file_closes_that_control_interface(
    host: tuple[ControlInterfaceHost, Forwarded], caplog: pytest.LogCaptureFixture
) -> None:
    """Never dies of a workload, never opens what it did not make: a regular file in place of
    output (and later a new FIFO of the workload's own) is not used; the interface stays closed."""
    cis, _forwarded = host
    folder = await cis.ensure(inst("wl"))
    writer = OutputWriter(folder)
    (folder / "output").unlink()
    (folder / "output").write_bytes(b"")
    writer.close()  # EOF: the relay reopens the path and finds a regular file
    await wait_until(lambda: "not the FIFO the agent made" in caplog.text)
    counters = cis.counters("wl")
    assert counters is not None and counters.closed_replaced_fifo == 1
    assert (folder / "output").read_bytes() == b""
    (folder / "output").unlink()
    os.mkfifo(folder / "output", 0o600)
    with pytest.raises(OSError, match="No such device"):
        OutputWriter(folder)  # nobody reads the new FIFO: the agent does not open it


async def _round_trip(cis: ControlInterfaceHost, forwarded: Forwarded, workload: str, folder: Path) -> None:
    reader = InputReader(folder)
    writer = OutputWriter(folder)
    writer.write(request_frame("ping"))
    assert (await forwarded.next()).request_id == f"{workload}@ping"
    cis.route(Response(request_id=f"{workload}@ping", body=complete_state_body("pong")))
    response = await reader.next_response()
    assert response.requestId == "ping"
    writer.close()
    reader.close()


async def test_fifos_replaced_by_symlinks_close_only_the_attackers_control_interface(
    host: tuple[ControlInterfaceHost, Forwarded], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A workload root in its container swaps its FIFOs for symlinks to another workload's FIFOs
    and to a host file: the agent opens neither, closes the attacker's interface with a warning,
    and the victim goes on as before."""
    cis, forwarded = host
    victim = await cis.ensure(inst("victim"))
    attacker = await cis.ensure(inst("attacker"))
    host_file = tmp_path / "host-secret"
    host_file.write_bytes(b"keep")
    writer = OutputWriter(attacker)
    (attacker / "output").unlink()
    (attacker / "output").symlink_to(victim / "output")
    (attacker / "input").unlink()
    (attacker / "input").symlink_to(host_file)
    writer.close()  # EOF on the attacker's old output: the relay reopens the path
    counters = cis.counters("attacker")
    assert counters is not None
    await wait_until(lambda: counters.closed_replaced_fifo == 1)
    assert "workload attacker" in caplog.text and "symbolic link" in caplog.text
    cis.route(Response(request_id="attacker@x", body=complete_state_body("x")))
    assert counters.responses_dropped_closed == 1
    assert host_file.read_bytes() == b"keep"
    await _round_trip(cis, forwarded, "victim", victim)
    victim_counters = cis.counters("victim")
    assert victim_counters is not None and victim_counters.closed_replaced_fifo == 0
    await cis.remove("attacker")
    assert not attacker.exists()
    assert host_file.read_bytes() == b"keep" and stat.S_ISFIFO(os.lstat(victim / "output").st_mode)


def _invalid_update_frame(request_id: str) -> bytes:
    workload = pb.Workload(agent="agent_A", runtime="podman", restartPolicy=7)  # type: ignore[arg-type]
    new_state = pb.CompleteState(desiredState=pb.State(apiVersion="v0.1", workloads={"bad": workload}))
    update = pb.UpdateStateRequest(newState=new_state, updateMask=["desiredState.workloads.bad"])
    return frame(
        pb.ToServer(request=pb.Request(requestId=request_id, updateStateRequest=update)).SerializeToString()
    )


async def test_request_the_server_could_not_convert_is_answered_with_an_error(
    host: tuple[ControlInterfaceHost, Forwarded], caplog: pytest.LogCaptureFixture
) -> None:
    """The v0.3.1 server drops the whole agent for such a request: it stays in the agent, and the
    workload learns why on its input."""
    cis, forwarded = host
    folder = await cis.ensure(inst("wl"))
    reader = InputReader(folder)
    writer = OutputWriter(folder)
    writer.write(_invalid_update_frame("u1") + request_frame("fine"))
    response = await reader.next_response()
    assert response.requestId == "u1"
    assert response.WhichOneof("ResponseContent") == "error"
    assert "restartPolicy has invalid value 7" in response.error.message
    assert (await forwarded.next()).request_id == "wl@fine"
    assert forwarded.queue.empty()
    counters = cis.counters("wl")
    assert counters is not None and counters.requests_rejected == 1
    assert "workload wl" in caplog.text and "restartPolicy" in caplog.text
    writer.close()
    reader.close()


async def test_reading_pauses_while_too_many_requests_wait_for_the_server(tmp_path: Path) -> None:
    """Back-pressure: a workload writing requests in a loop has at most max_in_flight of them on
    their way to the server; each response lets one more through, in order."""
    forwarded = Forwarded()
    settings = RelaySettings(open_retry_min=0.001, open_retry_max=0.02, max_in_flight=3)
    cis = ControlInterfaceHost(tmp_path / "io", forwarded, settings)
    folder = await cis.ensure(inst("flood"))
    writer = OutputWriter(folder)
    writer.write(b"".join(request_frame(f"q{i}") for i in range(10)))
    counters = cis.counters("flood")
    assert counters is not None
    await wait_until(lambda: counters.read_pauses >= 1 and forwarded.queue.qsize() == 3)
    await asyncio.sleep(0.05)  # give the relay every chance to forward too much
    assert forwarded.queue.qsize() == 3
    seen = [(await forwarded.next()).request_id for _ in range(3)]
    for i in range(7):
        cis.route(Response(request_id=f"flood@q{i}", body=complete_state_body("r")))
        seen.append((await forwarded.next()).request_id)
        assert forwarded.queue.empty()
    assert seen == [f"flood@q{i}" for i in range(10)]
    writer.close()
    await cis.close()


async def test_reading_pauses_only_when_a_workload_writes_beyond_its_share(tmp_path: Path) -> None:
    """Using up the last slot leaves the watch on output alone (no epoll change per request);
    the next request beyond the share stops reading until a response frees a slot."""
    forwarded = Forwarded()
    settings = RelaySettings(open_retry_min=0.001, open_retry_max=0.02, max_in_flight=2)
    cis = ControlInterfaceHost(tmp_path / "io", forwarded, settings)
    folder = await cis.ensure(inst("wl"))
    relay = cis._relays["wl"]
    writer = OutputWriter(folder)
    counters = cis.counters("wl")
    assert counters is not None
    writer.write(request_frame("q0") + request_frame("q1"))
    assert [(await forwarded.next()).request_id for _ in range(2)] == ["wl@q0", "wl@q1"]
    assert counters.read_pauses == 0 and relay.output._reading
    cis.route(Response(request_id="wl@q0", body=complete_state_body("r")))
    writer.write(request_frame("q2"))
    assert (await forwarded.next()).request_id == "wl@q2"
    assert counters.read_pauses == 0
    writer.write(request_frame("q3"))
    await wait_until(lambda: counters.read_pauses == 1)
    await asyncio.sleep(0.05)  # give the relay every chance to forward beyond the share
    assert forwarded.queue.empty()
    cis.route(Response(request_id="wl@q1", body=complete_state_body("r")))
    assert (await forwarded.next()).request_id == "wl@q3"
    writer.close()
    await cis.close()


async def test_requests_without_response_stop_counting_after_a_while(tmp_path: Path) -> None:
    """A server connection that went away with requests on it must not block a workload for good."""
    forwarded = Forwarded()
    settings = RelaySettings(
        open_retry_min=0.001, open_retry_max=0.02, max_in_flight=2, unanswered_after=0.05
    )
    cis = ControlInterfaceHost(tmp_path / "io", forwarded, settings)
    folder = await cis.ensure(inst("wl"))
    writer = OutputWriter(folder)
    writer.write(b"".join(request_frame(f"q{i}") for i in range(5)))
    seen = [(await forwarded.next()).request_id for _ in range(5)]
    assert seen == [f"wl@q{i}" for i in range(5)]
    counters = cis.counters("wl")
    assert counters is not None and counters.requests_unanswered >= 3
    writer.close()
    await cis.close()


async def test_flooding_workload_does_not_flood_the_log(
    host: tuple[ControlInterfaceHost, Forwarded], caplog: pytest.LogCaptureFixture
) -> None:
    """Review finding: one warning per dropped response/message let a workload write ~19 000 log
    lines in seconds; drops are now logged at counts 1, 2, 4, 8, ... and still all counted."""
    cis, forwarded = host
    folder = await cis.ensure(inst("flood"))
    writer = OutputWriter(folder)
    hello = frame(pb.ToServer(agentHello=pb.AgentHello(agentName="evil")).SerializeToString())
    writer.write(hello * 100 + request_frame("last"))
    assert (await forwarded.next()).request_id == "flood@last"
    for i in range(100 + SETTINGS.buffer_size):
        cis.route(Response(request_id=f"flood@{i}", body=complete_state_body(f"r{i}")))
    counters = cis.counters("flood")
    assert counters is not None
    assert counters.responses_dropped_buffer_full == 100
    assert counters.requests_dropped == {DropReason.AGENT_HELLO: 100}
    flood_lines = [
        r for r in caplog.records if "workload flood" in r.getMessage() and "dropped" in r.getMessage()
    ]
    # 1, 2, 4, ..., 64 for each of the two kinds of drop
    assert len(flood_lines) == 2 * 7
    writer.close()


async def test_requests_still_queued_for_the_server_always_count_as_in_flight(tmp_path: Path) -> None:
    """While the server is away the outbox keeps a workload's requests: giving up on them would
    let a flooding workload queue more and more; only written ones may stop counting."""
    outbox = Outbox()
    settings = RelaySettings(
        open_retry_min=0.001, open_retry_max=0.02, max_in_flight=2, unanswered_after=0.02
    )
    cis = ControlInterfaceHost(tmp_path / "io", outbox.send, settings, backlog=outbox.queued_requests)
    folder = await cis.ensure(inst("wl"))
    writer = OutputWriter(folder)
    writer.write(b"".join(request_frame(f"q{i}") for i in range(4)))
    counters = cis.counters("wl")
    assert counters is not None
    await wait_until(lambda: len(outbox) == 2)
    await asyncio.sleep(0.2)  # ten times unanswered_after: nothing may expire while queued
    assert len(outbox) == 2 and counters.requests_unanswered == 0
    assert outbox.queued_requests("wl") == 2
    for _ in range(2):  # the server comes back and takes them, but never answers
        outbox.confirm(await outbox.peek())
    await wait_until(lambda: len(outbox) == 2 and counters.requests_unanswered == 2)
    sent = []
    while len(outbox):
        msg = await outbox.peek()
        outbox.confirm(msg)
        assert isinstance(msg, Request)
        sent.append(msg.request_id)
    assert sent == ["wl@q2", "wl@q3"]
    assert outbox.queued_requests("wl") == 0
    writer.close()
    await cis.close()


async def test_idle_relays_retry_opening_input_on_one_common_beat(tmp_path: Path) -> None:
    """At the slowest pace, relays made at different times wake the loop together, once per beat."""
    beat = 0.05
    settings = RelaySettings(open_retry_min=0.001, open_retry_max=beat)
    cis = ControlInterfaceHost(tmp_path / "agent_A_io", Forwarded(), settings)
    try:
        await cis.ensure(inst("early"))
        await asyncio.sleep(0.013)
        await cis.ensure(inst("late"))
        await asyncio.sleep(beat * 4)  # both back off to the slowest pace
        due = set()
        for name in ("early", "late"):
            timer = cis._relays[name].input._in_timer
            assert timer is not None
            due.add(round(timer.when() / beat, 6))
        (slot,) = due  # one deadline for both, on the beat
        assert slot == int(slot)
    finally:
        await cis.close()
