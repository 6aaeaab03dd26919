"""PodmanRuntime against real Podman: create, states, delete, list."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ankaios_agent.agent.errors import RuntimeCreateFailed, WorkloadConfigError
from ankaios_agent.agent.model import ExecutionState, State, WorkloadSpec
from ankaios_agent.agent.ports import CreateRequest
from ankaios_agent.runtimes.podman.runtime import CONTROL_INTERFACE_TARGET
from tests.integration.podman.conftest import Harness

pytestmark = pytest.mark.podman


async def test_container_exiting_zero_reports_running_then_succeeded(
    harness: Harness, tmp_path: Path
) -> None:
    """A container living ~1 s is seen Running(Ok) before Succeeded(Ok)."""
    instance = harness.instance()
    cid = await harness.runtime.create(
        CreateRequest(harness.spec(instance, ["sh", "-c", "sleep 1"]), tmp_path)
    )
    await harness.recorder.wait_state(instance, ExecutionState.succeeded())
    assert harness.recorder.states_of(instance) == [ExecutionState.running(), ExecutionState.succeeded()]
    assert all(c.runtime_id == cid for c in harness.recorder.changes)


async def test_container_exiting_nonzero_reports_exit_code_text(harness: Harness) -> None:
    """Exited ≠ 0 → Failed(ExecFailed) with ``Exit code: 'N'``."""
    instance = harness.instance()
    await harness.runtime.create(CreateRequest(harness.spec(instance, ["sh", "-c", "exit 3"])))
    change = await harness.recorder.wait_for(
        lambda c: c.instance == instance and c.state.state is State.FAILED_EXEC_FAILED
    )
    assert change.state.info == "Exit code: '3'"


async def test_create_names_labels_and_mounts_like_the_reference(harness: Harness, tmp_path: Path) -> None:
    """Name <wl>.<id>.<agent>, labels name= and agent=, control dir mounted in the container."""
    (tmp_path / "marker").write_text("x")
    instance = harness.instance()
    script = f"test -f {CONTROL_INTERFACE_TARGET}/marker"
    cid = await harness.runtime.create(CreateRequest(harness.spec(instance, ["sh", "-c", script]), tmp_path))
    data = harness.env.inspect(cid)
    assert data["Name"] == str(instance)
    labels = data["Config"]["Labels"]  # type: ignore[index]
    assert labels["name"] == str(instance)
    assert labels["agent"] == harness.agent
    mounts = {m["Destination"]: m["Source"] for m in data["Mounts"]}  # type: ignore[attr-defined]
    assert mounts[CONTROL_INTERFACE_TARGET] == str(tmp_path)
    # The container itself sees the folder (exit 0 only if the marker file is visible).
    await harness.recorder.wait_state(instance, ExecutionState.succeeded())


async def test_user_name_wins_and_events_still_reach_the_instance(harness: Harness) -> None:
    """A user --name wins; the agent still tracks the container through its labels."""
    instance = harness.instance()
    custom = f"custom-{instance.id}"
    cid = await harness.runtime.create(
        CreateRequest(harness.spec(instance, ["sleep", "30"], ["--name", custom]))
    )
    assert harness.env.inspect(cid)["Name"] == custom
    await harness.recorder.wait_state(instance, ExecutionState.running())
    await harness.runtime.delete(instance)
    assert harness.env.containers(f"name={instance}") == []


async def test_delete_stops_and_removes_and_gone_is_success(harness: Harness) -> None:
    """Stop + remove; an already missing container counts as success."""
    instance = harness.instance()
    await harness.runtime.create(
        CreateRequest(harness.spec(instance, ["sleep", "60"], ["--stop-timeout", "1"]))
    )
    await harness.recorder.wait_state(instance, ExecutionState.running())
    await harness.runtime.delete(instance)
    assert harness.env.containers(f"name={instance}") == []
    await harness.runtime.delete(instance)  # already gone
    await harness.runtime.delete(harness.instance("never-existed"))


@pytest.mark.root  # rootless Podman on cgroup v1 cannot pause (no freezer delegation)
async def test_delete_of_a_paused_container_completes(harness: Harness) -> None:
    """Podman refuses to stop a paused container; delete then removes it with force and succeeds."""
    instance = harness.instance()
    cid = await harness.runtime.create(CreateRequest(harness.spec(instance, ["sleep", "60"])))
    await harness.recorder.wait_state(instance, ExecutionState.running())
    harness.env.podman("pause", cid)
    await harness.recorder.wait_state(instance, ExecutionState.unknown("paused"))
    await harness.runtime.delete(instance)
    assert harness.env.containers(f"name={instance}") == []


async def test_rm_container_vanishing_is_reported_lost(harness: Harness) -> None:
    """A --rm container exits and disappears → exit state, then Failed(Lost)."""
    instance = harness.instance()
    await harness.runtime.create(CreateRequest(harness.spec(instance, ["sh", "-c", "sleep 1"], ["--rm"])))
    await harness.recorder.wait_state(instance, ExecutionState.lost())
    states = harness.recorder.states_of(instance)
    assert states[0] == ExecutionState.running()
    assert ExecutionState.succeeded() in states
    await harness.runtime.delete(instance)  # gone already: success


async def test_container_removed_behind_the_agents_back_is_lost(harness: Harness) -> None:
    """Container id no longer exists → Failed(Lost)."""
    instance = harness.instance()
    cid = await harness.runtime.create(CreateRequest(harness.spec(instance, ["sleep", "60"])))
    await harness.recorder.wait_state(instance, ExecutionState.running())
    harness.env.podman("rm", "--force", "--time", "0", cid)
    await harness.recorder.wait_state(instance, ExecutionState.lost())


@pytest.mark.root  # rootless Podman on cgroup v1 cannot pause (no freezer delegation)
async def test_paused_container_is_failed_unknown_with_state_text(harness: Harness) -> None:
    """Paused and other states → Failed(Unknown) with the lowercase state text."""
    instance = harness.instance()
    cid = await harness.runtime.create(CreateRequest(harness.spec(instance, ["sleep", "60"])))
    await harness.recorder.wait_state(instance, ExecutionState.running())
    harness.env.podman("pause", cid)
    await harness.recorder.wait_state(instance, ExecutionState.unknown("paused"))
    harness.env.podman("unpause", cid)
    await harness.recorder.wait_for(
        lambda c: (
            c.instance == instance
            and c.state == ExecutionState.running()
            and c is not harness.recorder.changes[0]
        )
    )


async def test_list_owned_returns_this_agents_instances_with_state(harness: Harness) -> None:
    """Adoption data for running workloads of this agent only."""
    running, done = harness.instance("run"), harness.instance("done")
    run_id = await harness.runtime.create(CreateRequest(harness.spec(running, ["sleep", "60"])))
    done_id = await harness.runtime.create(CreateRequest(harness.spec(done, ["true"])))
    await harness.recorder.wait_state(done, ExecutionState.succeeded())
    harness.env.podman(
        "run", "-d", "--network", "none", "--label", f"agent={harness.agent}x", harness.env.image, "true"
    )
    try:
        owned = {o.instance: o for o in await harness.runtime.list_owned()}
    finally:
        harness.env.remove_by_label(f"agent={harness.agent}x")
    assert set(owned) == {running, done}
    assert owned[running].runtime_id == run_id
    assert owned[running].state == ExecutionState.running()
    assert owned[done].runtime_id == done_id
    assert owned[done].state == ExecutionState.succeeded()


async def test_bad_runtime_config_and_unknown_option_fail_before_touching_podman(harness: Harness) -> None:
    """Clear messages; nothing is created."""
    instance = harness.instance()
    with pytest.raises(WorkloadConfigError, match="missing the required key 'image'"):
        await harness.runtime.create(CreateRequest(WorkloadSpec(instance, "podman", "commandArgs: [a]")))
    with pytest.raises(WorkloadConfigError, match="unsupported podman option '--gpus'"):
        await harness.runtime.create(CreateRequest(harness.spec(instance, ["true"], ["--gpus", "all"])))
    assert harness.env.containers(f"agent={harness.agent}") == []


async def test_missing_image_fails_quickly_with_clear_text_and_leaves_nothing(harness: Harness) -> None:
    """A missing, unpullable image gives a StartingFailed text naming the image."""
    instance = harness.instance()
    config = "image: localhost/ank-no-such-image:1\ncommandOptions: [--network, none]\n"
    started = time.monotonic()
    with pytest.raises(RuntimeCreateFailed) as info:
        await harness.runtime.create(CreateRequest(WorkloadSpec(instance, "podman", config)))
    print(f"missing-image create failed after {time.monotonic() - started:.2f}s: {info.value.reason}")
    assert "localhost/ank-no-such-image:1" in info.value.reason
    assert harness.env.containers(f"agent={harness.agent}") == []


async def test_failed_start_leaves_no_container_and_returns_podmans_text(harness: Harness) -> None:
    """A failed create/start leaves nothing half-made; the error is Podman's text."""
    instance = harness.instance()
    with pytest.raises(RuntimeCreateFailed) as info:
        await harness.runtime.create(CreateRequest(harness.spec(instance, ["/no/such/binary"])))
    assert "no/such/binary" in info.value.reason
    assert harness.env.containers(f"agent={harness.agent}") == []


async def test_pull_never_with_missing_image_is_refused(harness: Harness) -> None:
    instance = harness.instance()
    config = "image: localhost/ank-no-such-image:2\ncommandOptions: [--pull, never]\n"
    with pytest.raises(RuntimeCreateFailed, match="pull policy is 'never'"):
        await harness.runtime.create(CreateRequest(WorkloadSpec(instance, "podman", config)))
