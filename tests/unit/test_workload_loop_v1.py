"""The workload loop under the v1.0.1 rules, with a FakeRuntime: retries without limit after a
jittered back-off, unsupported runtimes, the instance's folder and files, and restarts that start
the ended container again."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ankaios_agent.agent.errors import WorkloadConfigError
from ankaios_agent.agent.fakes import FakeClock, FakeControlInterfaceHost, FakeRuntime
from ankaios_agent.agent.instance_folder import folder_name_is_safe
from ankaios_agent.agent.lifecycle_rules import V0_3_RULES, V1_RULES, RulesHolder
from ankaios_agent.agent.model import (
    ExecutionState,
    RestartPolicy,
    State,
    TextContent,
    WorkloadFile,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.timings import AgentTimings
from ankaios_agent.agent.workload_loop import WorkloadLoop
from tests.support.lifecycle import WaitingSink, settle
from tests.unit.lifecycle_support import (
    NO_MORE_RETRIES,
    REMOVED,
    RUNNING,
    STARTING,
    STOPPING_REQUESTED,
    inst,
    spec,
)

SUCCEEDED = ExecutionState.succeeded()
UNSUPPORTED = ExecutionState.unsupported_runtime()


def retry(n: int, error: str) -> ExecutionState:
    return ExecutionState.retrying(n, error)


def with_files(base: WorkloadSpec, *files: tuple[str, str]) -> WorkloadSpec:
    return dataclasses.replace(base, files=tuple(WorkloadFile(mp, TextContent(text)) for mp, text in files))


@dataclass
class Harness:
    runtime: FakeRuntime
    ci: FakeControlInterfaceHost
    sink: WaitingSink
    clock: FakeClock
    timings: AgentTimings
    rules: RulesHolder
    run: Path
    jitter_calls: list[int]
    loops: dict[str, WorkloadLoop] = field(default_factory=dict)

    def report(self, state: WorkloadState) -> None:  # StateReporter
        self.sink.send(state)

    def loop(self, name: str) -> WorkloadLoop:
        loop = WorkloadLoop(
            name,
            runtimes={self.runtime.name: self.runtime},
            control_interfaces=self.ci,
            reporter=self,
            timings=self.timings,
            clock=self.clock,
            rules=self.rules,
            run_folder=self.run,
        )
        self.loops[name] = loop
        loop.start()
        return loop

    async def route_events(self) -> None:
        async for change in self.runtime.events():
            loop = self.loops.get(change.instance.workload)
            if loop is not None:
                loop.commands.state_changed(change)

    def files_dir(self, name: str, id_: str = "1") -> Path:
        return self.run / f"{name}.{id_}" / "files"


async def make(
    tmp_path: Path, *, auto: bool = True, runtime: FakeRuntime | None = None
) -> AsyncIterator[Harness]:
    calls: list[int] = []

    def largest(upper: int) -> int:  # deterministic: always the largest delay allowed
        calls.append(upper)
        return upper

    timings = AgentTimings(jitter_ms=largest)
    h = Harness(
        runtime or FakeRuntime(),
        FakeControlInterfaceHost(),
        WaitingSink(),
        FakeClock(auto=auto),
        timings,
        RulesHolder(V1_RULES),
        tmp_path / "run",
        calls,
    )
    router = asyncio.create_task(h.route_events())
    await settle()
    yield h
    router.cancel()
    for loop in h.loops.values():
        await loop.stop()


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in make(tmp_path):
        yield harness


@pytest.fixture
async def manual(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in make(tmp_path, auto=False):
        yield harness


# --- create retries -----------------------------------------------------------------


async def test_failed_creates_report_retry_n_after_one_triggered_at_runtime(h: Harness) -> None:
    """ "Triggered at runtime." once, then "Retry <n>: <error>" per failure; delays 0.5, 1, 2 s at most."""
    h.runtime.fail_creates("a", "e1", "e2", "e3")
    h.loop("a").commands.create(spec("a"))
    await h.sink.wait_for_state("a", RUNNING)
    assert h.sink.trace("a") == [
        ("1", STARTING),
        ("1", retry(1, "e1")),
        ("1", retry(2, "e2")),
        ("1", retry(3, "e3")),
        ("1", RUNNING),
    ]
    assert h.jitter_calls == [500, 1000, 2000]
    assert h.clock.sleeps == [0.5, 1.0, 2.0]
    assert len(h.runtime.created("a")) == 4


async def test_retries_never_give_up(h: Harness) -> None:
    """Far beyond v0.3.1's 20 retries: still Pending(Starting), never StartingFailed."""
    h.runtime.fail_creates_always("a", "pull failed")
    h.loop("a").commands.create(spec("a"))
    await h.sink.wait_for_state("a", retry(40, "pull failed"))
    states = [s for _, s in h.sink.trace("a")]
    assert all(s.state is State.PENDING_STARTING for s in states)
    assert states.count(STARTING) == 1
    assert NO_MORE_RETRIES not in states
    assert max(h.jitter_calls) == 300_000


async def test_an_update_cancels_a_pending_retry_and_starts_at_retry_1(manual: Harness) -> None:
    h = manual
    h.runtime.fail_creates_always("a", "boom")
    loop = h.loop("a")
    loop.commands.create(spec("a", "1"))
    await h.sink.wait_for_state("a", retry(1, "boom"))
    h.clock.advance(0.5)
    await h.sink.wait_for_state("a", retry(2, "boom"))
    loop.commands.update(spec("a", "2"), inst("a", "1"))
    await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("2", retry(1, "boom")))
    h.clock.advance(10)  # the cancelled timer of instance 1 must not cause an attempt
    await h.sink.wait_for(
        lambda: h.sink.trace("a")[-1][1] == retry(2, "boom") and h.sink.trace("a")[-1][0] == "2"
    )
    await settle()
    assert h.sink.trace("a") == [
        ("1", STARTING),
        ("1", retry(1, "boom")),
        ("1", retry(2, "boom")),
        ("1", STOPPING_REQUESTED),
        ("1", REMOVED),
        ("2", STARTING),
        ("2", retry(1, "boom")),
        ("2", retry(2, "boom")),
    ]
    assert [i.id for i in h.runtime.created("a")] == ["1", "1", "2", "2"]


async def test_a_delete_cancels_a_pending_retry(manual: Harness) -> None:
    h = manual
    h.runtime.fail_creates_always("a", "boom")
    loop = h.loop("a")
    loop.commands.create(spec("a"))
    await h.sink.wait_for_state("a", retry(1, "boom"))
    loop.commands.delete(inst("a"))
    await h.sink.wait_for_state("a", REMOVED)
    h.clock.advance(10)
    await settle()
    assert h.sink.trace("a")[-2:] == [("1", STOPPING_REQUESTED), ("1", REMOVED)]
    assert len(h.runtime.created("a")) == 1


CONFIG_ERRORS = [
    ("bad runtimeConfig", "missing field `image`"),
    (
        "kube refuses files",
        "Workload files are not supported for podman-kube runtime. Use ConfigMaps instead.",
    ),
]


@pytest.mark.parametrize(("case", "reason"), CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS])
async def test_a_create_that_cannot_succeed_reports_its_reason_alone(
    h: Harness, case: str, reason: str
) -> None:
    h.runtime.fail_creates_always("a", WorkloadConfigError(inst("a"), reason))
    h.loop("a").commands.create(spec("a"))
    await h.sink.wait_for_state("a", ExecutionState.starting_failed(reason))
    await settle()
    assert h.sink.trace("a") == [("1", STARTING), ("1", ExecutionState.starting_failed(reason))]
    assert len(h.runtime.created("a")) == 1


async def test_the_rules_are_read_when_deciding_not_when_the_loop_started(h: Harness) -> None:
    """A loop built under v0.3.1 rules behaves as v1.0.1 once the session says so, and back."""
    h.rules.use(V0_3_RULES)
    loop = h.loop("a")
    h.rules.use(V1_RULES)
    h.runtime.fail_creates("a", "e1")
    loop.commands.create(spec("a", "1"))
    await h.sink.wait_for_state("a", RUNNING)
    assert h.sink.trace("a") == [("1", STARTING), ("1", retry(1, "e1")), ("1", RUNNING)]
    h.rules.use(V0_3_RULES)
    h.runtime.fail_creates("a", "e2")
    loop.commands.update(spec("a", "2"), inst("a", "1"))
    await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("2", RUNNING))
    assert h.sink.trace("a")[3:] == [
        ("1", STOPPING_REQUESTED),
        ("1", REMOVED),
        ("2", STARTING),
        ("2", ExecutionState.starting_failed("e2")),
        ("2", STARTING),
        ("2", RUNNING),
    ]


# --- unsupported runtime ---------------------------------------------------------------


async def test_unsupported_runtime_create_update_delete(h: Harness) -> None:
    loop = h.loop("k")
    first = with_files(spec("k", "1", runtime="containerd"), ("/etc/k.conf", "x"))
    loop.commands.create(first)
    await h.sink.wait_for_state("k", UNSUPPORTED)
    loop.commands.update(spec("k", "2", runtime="containerd"), inst("k", "1"))
    await h.sink.wait_for(lambda: h.sink.trace("k")[-1] == ("2", UNSUPPORTED))
    loop.commands.delete(inst("k", "2"))
    await h.sink.wait_for(lambda: h.sink.trace("k")[-1] == ("2", REMOVED))
    assert h.sink.trace("k") == [
        ("1", STARTING),
        ("1", UNSUPPORTED),
        ("1", STOPPING_REQUESTED),
        ("1", REMOVED),
        ("2", STARTING),
        ("2", UNSUPPORTED),
        ("2", STOPPING_REQUESTED),
        ("2", REMOVED),
    ]
    assert h.runtime.calls == []
    assert not h.files_dir("k", "1").exists()  # nothing is written for a workload nobody runs


# --- the instance's folder and its files --------------------------------------------------------


async def test_files_are_written_before_the_create_and_mounted_read_only(h: Harness) -> None:
    wanted = with_files(spec("a"), ("/etc/app/config.json", '{"x": 1}'), ("/a/./b", "bee"))
    h.loop("a").commands.create(wanted)
    await h.sink.wait_for_state("a", RUNNING)
    files = h.files_dir("a")
    assert (files / "etc/app/config.json").read_text() == '{"x": 1}'
    assert (files / "a/b").read_text() == "bee"
    mounts = h.runtime.container("a").file_mounts
    assert [(m.source, m.destination) for m in mounts] == [
        (files / "etc/app/config.json", "/etc/app/config.json"),
        (files / "a/b", "/a/b"),
    ]


BAD_FILES = [
    ("relative", "etc/x", "invalid mount point 'etc/x': 'path 'etc/x' is relative, expected absolute path'"),
    ("directory", "/etc/", "invalid mount point '/etc/': ''/etc/' is a directory, expected a file'"),
    (
        "dot-dot",
        "/etc/../../x",
        "invalid mount point '/etc/../../x': 'path '/etc/../../x' contains invalid path components'",
    ),
]


@pytest.mark.parametrize(("case", "mount_point", "reason"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
async def test_a_bad_file_fails_the_workload_without_runtime_call_or_retry(
    h: Harness, case: str, mount_point: str, reason: str
) -> None:
    h.loop("a").commands.create(with_files(spec("a"), ("/ok", "fine"), (mount_point, "x")))
    failed = ExecutionState.files_failed(reason)
    await h.sink.wait_for_state("a", failed)
    await settle()
    assert h.sink.trace("a") == [("1", STARTING), ("1", failed)]
    assert h.runtime.calls == []
    assert not h.files_dir("a").exists()
    assert not (h.run.parent / "x").exists()


async def test_files_are_removed_after_a_failed_create_and_written_again_for_the_retry(
    manual: Harness,
) -> None:
    h = manual
    h.runtime.fail_creates("a", "boom")
    h.loop("a").commands.create(with_files(spec("a"), ("/f", "one")))
    await h.sink.wait_for_state("a", retry(1, "boom"))
    assert not h.files_dir("a").exists()
    h.clock.advance(0.5)
    await h.sink.wait_for_state("a", RUNNING)
    assert (h.files_dir("a") / "f").read_text() == "one"


async def test_a_files_only_change_is_an_update_that_rewrites_the_files(h: Harness) -> None:
    loop = h.loop("a")
    loop.commands.create(with_files(spec("a"), ("/f", "old"), ("/gone", "x")))
    await h.sink.wait_for_state("a", RUNNING)
    first_id = h.runtime.container("a").runtime_id
    loop.commands.update(with_files(spec("a"), ("/f", "new")), inst("a"))
    await h.sink.wait_for(
        lambda: len(h.runtime.created("a")) == 2 and h.sink.trace("a")[-1] == ("1", RUNNING)
    )
    assert h.sink.trace("a")[2:] == [
        ("1", STOPPING_REQUESTED),
        ("1", REMOVED),
        ("1", STARTING),
        ("1", RUNNING),
    ]
    assert (h.files_dir("a") / "f").read_text() == "new"
    assert not (h.files_dir("a") / "gone").exists()
    assert h.runtime.container("a").runtime_id != first_id


async def test_update_to_another_id_removes_the_old_folder_and_delete_removes_the_folder(h: Harness) -> None:
    loop = h.loop("a")
    loop.commands.create(with_files(spec("a", "1"), ("/f", "one")))
    await h.sink.wait_for_state("a", RUNNING)
    old_folder = h.run / "a.1"
    (old_folder / "control_interface").mkdir()  # whatever else lives in the instance's folder
    loop.commands.update(with_files(spec("a", "2"), ("/f", "two")), inst("a", "1"))
    await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("2", RUNNING))
    assert not old_folder.exists()
    assert (h.files_dir("a", "2") / "f").read_text() == "two"
    loop.commands.delete(inst("a", "2"))
    await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("2", REMOVED))
    assert not (h.run / "a.2").exists()


async def test_update_delete_only_removes_the_files_but_keeps_the_folder(h: Harness) -> None:
    loop = h.loop("a")
    loop.commands.create(with_files(spec("a"), ("/f", "one")))
    await h.sink.wait_for_state("a", RUNNING)
    (h.run / "a.1" / "keep").write_text("k")
    loop.commands.update_delete_only(inst("a"))
    await h.sink.wait_for_state("a", REMOVED)
    assert not h.files_dir("a").exists()
    assert (h.run / "a.1" / "keep").exists()


async def test_v0_3_rules_write_no_files(h: Harness) -> None:
    h.rules.use(V0_3_RULES)
    h.loop("a").commands.create(with_files(spec("a"), ("/f", "one")))
    await h.sink.wait_for_state("a", RUNNING)
    assert not h.run.exists()
    assert h.runtime.container("a").file_mounts == ()


# --- restart policy: starting the ended container again ------------------------------------------


async def test_always_restart_after_success_starts_the_same_container_again(h: Harness) -> None:
    h.loop("a").commands.create(with_files(spec("a", restart=RestartPolicy.ALWAYS), ("/f", "one")))
    await h.sink.wait_for_state("a", RUNNING)
    runtime_id = h.runtime.container("a").runtime_id
    h.runtime.exit("a", 0)
    await h.sink.wait_for(
        lambda: h.runtime.container("a").starts == 2 and h.sink.trace("a")[-1] == ("1", RUNNING)
    )
    assert h.sink.trace("a") == [
        ("1", STARTING),
        ("1", RUNNING),
        ("1", SUCCEEDED),
        ("1", STARTING),
        ("1", RUNNING),
    ]
    assert h.runtime.reused("a") == [runtime_id]
    assert h.runtime.container("a").runtime_id == runtime_id
    assert h.runtime.deleted() == []
    assert h.runtime.requests[-1].file_mounts  # the files are written and mounted again
    assert (h.files_dir("a") / "f").read_text() == "one"


EXIT_RESTARTS = [
    ("ALWAYS after failure", RestartPolicy.ALWAYS, 1, True),
    ("ON_FAILURE after failure", RestartPolicy.ON_FAILURE, 1, True),
    ("runtime that cannot start it again", RestartPolicy.ALWAYS, 0, False),
]


@pytest.mark.parametrize(
    ("case", "policy", "code", "can_reuse"), EXIT_RESTARTS, ids=[c[0] for c in EXIT_RESTARTS]
)
async def test_other_restarts_replace_the_container(
    tmp_path: Path, case: str, policy: RestartPolicy, code: int, can_reuse: bool
) -> None:
    async for h in make(tmp_path, runtime=FakeRuntime(reuses_containers=code != 0 or can_reuse)):
        h.loop("a").commands.create(spec("a", restart=policy))
        await h.sink.wait_for_state("a", RUNNING)
        runtime_id = h.runtime.container("a").runtime_id
        h.runtime.exit("a", code)

        def replaced(h: Harness = h) -> bool:
            return len(h.runtime.created("a")) == 2 and h.sink.trace("a")[-1] == ("1", RUNNING)

        await h.sink.wait_for(replaced)
        assert [s for _, s in h.sink.trace("a")[3:]] == [STOPPING_REQUESTED, REMOVED, STARTING, RUNNING]
        assert h.runtime.reused() == []
        assert h.runtime.container("a").runtime_id != runtime_id


async def test_a_failed_start_of_the_ended_container_falls_back_to_new_containers(h: Harness) -> None:
    h.loop("a").commands.create(spec("a", restart=RestartPolicy.ALWAYS))
    await h.sink.wait_for_state("a", RUNNING)
    runtime_id = h.runtime.container("a").runtime_id
    h.runtime.fail_creates("a", "cannot start")
    h.runtime.exit("a", 0)
    await h.sink.wait_for(
        lambda: len(h.runtime.created("a")) == 3 and h.sink.trace("a")[-1] == ("1", RUNNING)
    )
    assert [s for _, s in h.sink.trace("a")[2:]] == [SUCCEEDED, STARTING, retry(1, "cannot start"), RUNNING]
    assert [r.reuse_id for r in h.runtime.requests] == [None, runtime_id, None]
    assert h.runtime.container("a").runtime_id != runtime_id


async def test_a_create_with_a_reuse_id_starts_that_container(h: Harness) -> None:
    runtime_id = h.runtime.add_existing(inst("a"), SUCCEEDED)
    h.loop("a").commands.create(spec("a"), runtime_id)
    await h.sink.wait_for_state("a", RUNNING)
    assert h.sink.trace("a") == [("1", STARTING), ("1", RUNNING)]
    assert h.runtime.reused() == [runtime_id]
    assert h.runtime.container("a").starts == 2


@pytest.mark.parametrize("name", ["../escape", "a/b"])
async def test_a_workload_name_that_is_no_folder_name_gets_nothing_written(h: Harness, name: str) -> None:
    loop = h.loop(name)
    loop.commands.create(with_files(spec(name), ("/f", "x")))
    await h.sink.wait_for(
        lambda: any(s.state is State.PENDING_STARTING_FAILED for _, s in h.sink.trace(name))
    )
    loop.commands.delete(inst(name))
    await h.sink.wait_for_state(name, REMOVED)
    assert h.runtime.calls == []
    assert not (h.run.parent / "escape.1").exists() and not h.run.exists()


FOLDER_NAMES = [
    ("a.1", True),
    ("x_y-z.abc", True),
    ("", False),
    (".", False),
    ("..", False),
    ("../a.1", False),
    ("a\0.1", False),
]


@pytest.mark.parametrize(("name", "safe"), FOLDER_NAMES)
def test_folder_name_is_safe(name: str, safe: bool) -> None:
    assert folder_name_is_safe(name) is safe


async def test_the_files_of_a_name_that_is_no_folder_name_fail_with_that_reason(h: Harness) -> None:
    name = "a\0b"  # accepted by the fake control interfaces, refused as a folder name
    h.loop(name).commands.create(with_files(spec(name), ("/f", "x")))
    failed = ExecutionState.files_failed(f"the workload name {name!r} cannot be a folder name")
    await h.sink.wait_for_state(name, failed)
    assert h.runtime.calls == [] and not h.run.exists()


# --- a control interface that cannot be made


@pytest.mark.parametrize("v1", [True, False], ids=["v1.0.1", "v0.3.1"])
async def test_a_control_interface_that_cannot_be_made(h: Harness, v1: bool) -> None:
    """v1.0.1 starts the workload without it (and without the mount), as the reference does;
    v0.3.1 fails the create with the reason, not retried."""
    if not v1:
        h.rules.use(V0_3_RULES)
    h.ci.broken.add("a")
    h.loop("a").commands.create(spec("a"))
    if v1:
        await h.sink.wait_for_state("a", RUNNING)
        assert [r.control_dir for r in h.runtime.requests] == [None]
    else:
        failed = ExecutionState.starting_failed("the workload name cannot be a folder name")
        await h.sink.wait_for_state("a", failed)
        assert h.runtime.requests == []
