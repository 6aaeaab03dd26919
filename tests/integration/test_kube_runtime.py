"""The podman-kube runtime against a real Podman.

Every test uses its own agent name and pod names, and removes only the pods
and volumes it created.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest
import yaml

from ankaios_agent.agent.errors import RuntimeCreateFailed, RuntimeDeleteFailed, WorkloadConfigError
from ankaios_agent.agent.model import ExecutionState, InstanceName, State, WorkloadSpec
from ankaios_agent.agent.ports import CreateRequest, StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.monitor import MonitorTimings
from ankaios_agent.runtimes.podman_kube import PodmanKubeRuntime
from ankaios_agent.runtimes.podman_kube.kube_api import KubeApi
from tests.support.podman_env import IMAGE, PodmanEnv

pytestmark = pytest.mark.podman

WAIT_S = 60.0  # upper bound for a state to show up; a bound for failure, not a speed check
# Runs until stopped and stops at once on SIGTERM (sh as PID 1 would ignore it and wait the grace period).
LONG = "trap 'exit 0' TERM; sleep 600 & wait"


def pod_manifest(pod: str, image: str, *containers: tuple[str, str], restart: str = "Never") -> str:
    """A Pod with containers (name, shell script) running busybox sh."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod},
            "spec": {
                "restartPolicy": restart,
                "containers": [
                    {"name": name, "image": image, "command": ["/bin/sh", "-c", script]}
                    for name, script in containers
                ],
            },
        }
    )


def kube_spec(agent: str, workload: str, manifest: str, **options: list[str]) -> WorkloadSpec:
    runtime_config = yaml.safe_dump({"manifest": manifest, **options})
    instance = InstanceName(
        workload=workload, agent=agent, id=hashlib.sha256(runtime_config.encode()).hexdigest()
    )
    return WorkloadSpec(instance=instance, runtime="podman-kube", runtime_config=runtime_config)


@dataclass
class Kube:
    """A runtime under test plus what the test created, for clean-up and assertions."""

    env: PodmanEnv
    connection: PodmanConnection
    agent: str
    suffix: str
    pods: list[str] = field(default_factory=list)

    def runtime(self) -> PodmanKubeRuntime:
        # A long relist interval: states must arrive through the event stream.
        timings = MonitorTimings(relist_interval_s=300.0, outage_grace_s=10.0)
        return PodmanKubeRuntime(self.connection, self.agent, timings)

    def pod_name(self, base: str) -> str:
        name = f"{base}-{self.suffix}"
        self.pods.append(name)
        return name

    def volumes(self) -> dict[str, dict[str, str]]:
        out = self.env.podman("volume", "ls", "--format", "json").stdout
        return {
            v["Name"]: v.get("Labels") or {}
            for v in json.loads(out or "[]")
            if v["Name"].endswith(f".{self.agent}.config") or v["Name"].endswith(f".{self.agent}.pods")
        }

    def pod_ids(self, name: str) -> list[str]:
        out = self.env.podman("pod", "ps", "--filter", f"name=^{name}$", "--format", "{{.ID}}", "--no-trunc")
        return out.stdout.split()


@pytest.fixture
def kube(podman_env: PodmanEnv) -> Iterator[Kube]:
    suffix = uuid.uuid4().hex[:8]
    connection = PodmanConnection(podman_env.socket_url)
    kube = Kube(podman_env, connection, agent=f"kubeagent{suffix}", suffix=suffix)
    try:
        yield kube
    finally:
        for pod in kube.pods:
            podman_env.podman("pod", "rm", "--force", "--ignore", pod, check=False)
        for volume in kube.volumes():
            podman_env.podman("volume", "rm", "--force", volume, check=False)
        connection.close()


class StateWatch:
    """Collects a runtime's state changes and waits for one that matches."""

    def __init__(self, stream: AsyncIterator[StateChange]) -> None:
        self.changes: list[StateChange] = []
        self._stream = stream
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for change in self._stream:
            self.changes.append(change)
            self._arrived.set()

    async def wait_for(
        self, instance: InstanceName, accept: Callable[[ExecutionState], bool], runtime_id: str | None = None
    ) -> StateChange:
        async def scan() -> StateChange:
            seen = 0
            while True:
                for change in self.changes[seen:]:
                    if (
                        change.instance == instance
                        and accept(change.state)
                        and (runtime_id is None or change.runtime_id == runtime_id)
                    ):
                        return change
                seen = len(self.changes)
                self._arrived.clear()
                await self._arrived.wait()

        try:
            return await asyncio.wait_for(scan(), WAIT_S)
        except TimeoutError:
            pytest.fail(f"no matching state for {instance}; saw {[str(c.state) for c in self.changes]}")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


@contextlib.asynccontextmanager
async def watching(runtime: PodmanKubeRuntime) -> AsyncIterator[StateWatch]:
    watch = StateWatch(runtime.events())
    try:
        yield watch
    finally:
        await watch.close()


def is_(state: State, info: str | None = None) -> Callable[[ExecutionState], bool]:
    return lambda s: s.state is state and (info is None or s.info == info)


def b64_no_pad(text: str) -> str:
    return base64.b64encode(text.encode()).decode().rstrip("=")


async def test_single_container_pod_runs_and_is_deleted_with_its_volumes(kube: Kube) -> None:
    """Play, bookkeeping volumes exactly as the reference, kube down, volumes gone."""
    runtime = kube.runtime()
    spec = kube_spec(kube.agent, "single", pod_manifest(kube.pod_name("single"), kube.env.image, ("c", LONG)))
    async with watching(runtime) as watch:
        runtime_id = await runtime.create(CreateRequest(spec))
        pod_ids = kube.pod_ids(f"single-{kube.suffix}")
        assert runtime_id == pod_ids[0]
        change = await watch.wait_for(spec.instance, is_(State.RUNNING_OK))
        assert change.runtime_id == runtime_id

        volumes = kube.volumes()
        assert volumes[f"{spec.instance}.config"] == {"data": b64_no_pad(spec.runtime_config)}
        assert volumes[f"{spec.instance}.pods"] == {
            "data": b64_no_pad(json.dumps(pod_ids, separators=(",", ":")))
        }
        assert "=" not in volumes[f"{spec.instance}.config"]["data"]

        await runtime.delete(spec.instance)
        assert kube.pod_ids(f"single-{kube.suffix}") == []
        assert kube.volumes() == {}
        await runtime.delete(spec.instance)  # already gone = success


async def test_multi_container_pod_reports_the_failing_exit_code(kube: Kube) -> None:
    """Minimum over all containers; Failed(n) wins over Running."""
    runtime = kube.runtime()
    manifest = pod_manifest(
        kube.pod_name("multi"), kube.env.image, ("long", LONG), ("short", "sleep 1; exit 3")
    )
    spec = kube_spec(kube.agent, "multi", manifest)
    async with watching(runtime) as watch:
        runtime_id = await runtime.create(CreateRequest(spec))
        await watch.wait_for(spec.instance, is_(State.RUNNING_OK))
        change = await watch.wait_for(spec.instance, is_(State.FAILED_EXEC_FAILED, "Exit code: '3'"))
        assert change.runtime_id == runtime_id
        await runtime.delete(spec.instance)
    assert kube.pod_ids(f"multi-{kube.suffix}") == []


async def test_pod_whose_containers_exit_zero_succeeds(kube: Kube) -> None:
    """Succeeded once every container, infra included, has exited 0."""
    runtime = kube.runtime()
    manifest = pod_manifest(kube.pod_name("ok"), kube.env.image, ("a", "sleep 1"), ("b", "sleep 2"))
    spec = kube_spec(kube.agent, "ok", manifest)
    async with watching(runtime) as watch:
        await runtime.create(CreateRequest(spec))
        await watch.wait_for(spec.instance, is_(State.SUCCEEDED_OK, ""))
        await runtime.delete(spec.instance)


async def test_new_runtime_adopts_existing_workload_after_agent_restart(kube: Kube) -> None:
    """A new runtime object finds the workload from its volumes and follows it."""
    first = kube.runtime()
    spec = kube_spec(kube.agent, "adopt", pod_manifest(kube.pod_name("adopt"), kube.env.image, ("c", LONG)))
    runtime_id = await first.create(CreateRequest(spec))

    second = kube.runtime()  # the agent restarted: nothing in memory
    owned = await second.list_owned()
    assert [(o.instance, o.runtime_id, o.state) for o in owned] == [
        (spec.instance, runtime_id, ExecutionState.running())
    ]
    async with watching(second) as watch:
        await watch.wait_for(spec.instance, is_(State.RUNNING_OK))
        kube.env.podman("pod", "kill", f"adopt-{kube.suffix}")
        await watch.wait_for(spec.instance, is_(State.FAILED_EXEC_FAILED, "Exit code: '137'"))
        await second.delete(spec.instance)
    assert kube.pod_ids(f"adopt-{kube.suffix}") == []
    assert kube.volumes() == {}


async def test_adoption_with_unreadable_pod_list_reports_succeeded(kube: Kube) -> None:
    """A missing pod list after resume means Succeeded(Ok); delete still works."""
    first = kube.runtime()
    spec = kube_spec(kube.agent, "nopods", pod_manifest(kube.pod_name("nopods"), kube.env.image, ("c", LONG)))
    await first.create(CreateRequest(spec))
    kube.env.podman("volume", "rm", f"{spec.instance}.pods")

    second = kube.runtime()
    owned = await second.list_owned()
    assert [(o.instance, o.runtime_id, o.state) for o in owned] == [
        (spec.instance, "", ExecutionState.succeeded())
    ]
    await second.delete(spec.instance)  # kube down with the stored manifest
    assert kube.pod_ids(f"nopods-{kube.suffix}") == []
    assert kube.volumes() == {}


async def test_recreate_after_delete_gets_a_new_pod_id(kube: Kube) -> None:
    """Restart policy for kube = delete + create: same instance, new pod id."""
    runtime = kube.runtime()
    spec = kube_spec(
        kube.agent, "again", pod_manifest(kube.pod_name("again"), kube.env.image, ("c", "exit 1"))
    )
    async with watching(runtime) as watch:
        old_id = await runtime.create(CreateRequest(spec))
        await watch.wait_for(spec.instance, is_(State.FAILED_EXEC_FAILED, "Exit code: '1'"), old_id)
        await runtime.delete(spec.instance)
        new_id = await runtime.create(CreateRequest(spec))
        assert new_id != old_id
        await watch.wait_for(spec.instance, is_(State.FAILED_EXEC_FAILED, "Exit code: '1'"), new_id)
        await runtime.delete(spec.instance)


async def test_pod_removed_behind_the_agents_back_is_unknown(kube: Kube) -> None:
    """A watched pod missing from Podman counts as an Unknown container."""
    runtime = kube.runtime()
    spec = kube_spec(kube.agent, "gone", pod_manifest(kube.pod_name("gone"), kube.env.image, ("c", LONG)))
    async with watching(runtime) as watch:
        await runtime.create(CreateRequest(spec))
        await watch.wait_for(spec.instance, is_(State.RUNNING_OK))
        kube.env.podman("pod", "rm", "--force", f"gone-{kube.suffix}")
        await watch.wait_for(spec.instance, is_(State.FAILED_UNKNOWN, "unknown container state"))
        await runtime.delete(spec.instance)  # pods already gone = success
    assert kube.volumes() == {}


async def test_unplayable_manifest_fails_and_leaves_nothing_behind(kube: Kube) -> None:
    """Podman's error text; no pod and no volume left, so a retry fails the same way."""
    runtime = kube.runtime()
    manifest = pod_manifest(kube.pod_name("noimage"), "localhost/ank-no-such-image:latest", ("c", "true"))
    spec = kube_spec(kube.agent, "noimage", manifest)
    for _ in range(2):
        with pytest.raises(RuntimeCreateFailed) as info:
            await runtime.create(CreateRequest(spec))
        assert "ank-no-such-image" in info.value.reason
        assert kube.pod_ids(f"noimage-{kube.suffix}") == []
        assert kube.volumes() == {}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"apiVersion": "v1", "kind": "Service"}, "does not contain any supported kube kind"),
        ({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": 5}}, "cannot unmarshal number"),
        (
            {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "noimage"}]}},
            "repository name",
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "spec": {"containers": [{"name": "c", "image": IMAGE, "command": ["/bin/no-such-program"]}]},
            },
            "failed to start 1 containers",
        ),
    ],
)
async def test_manifest_podman_rejects_is_a_create_error_with_its_text(
    kube: Kube, document: dict[str, object], expected: str
) -> None:
    """Manifests that pass our checks but not Podman's: Podman's message, nothing left behind.

    The container without an image, and the one whose program does not exist,
    make Podman create the pod before failing; the runtime tears it down.
    """
    runtime = kube.runtime()
    name = kube.pod_name("bad")
    manifest = yaml.safe_dump({**document, "metadata": {"name": name}})
    spec = kube_spec(kube.agent, "bad", manifest)
    with pytest.raises(RuntimeCreateFailed) as info:
        await runtime.create(CreateRequest(spec))
    assert expected in info.value.reason
    assert kube.pod_ids(name) == []
    assert kube.volumes() == {}


async def test_play_clashing_with_a_foreign_pod_leaves_that_pod_alone(kube: Kube) -> None:
    """A pod of the same name that the agent did not create is never torn down."""
    name = kube.pod_name("clash")
    kube.env.podman("pod", "create", "--name", name)
    runtime = kube.runtime()
    spec = kube_spec(kube.agent, "clash", pod_manifest(name, kube.env.image, ("c", LONG)))
    with pytest.raises(RuntimeCreateFailed) as info:
        await runtime.create(CreateRequest(spec))
    assert "already exists" in info.value.reason
    assert len(kube.pod_ids(name)) == 1
    assert kube.volumes() == {}


@pytest.mark.parametrize(
    ("runtime_config", "expected"),
    [
        ("manifest: [", "not valid YAML"),
        ("image: busybox", "'manifest' is missing"),
        ("manifest: 'kind: Pod'\nplayOptions: [--userns, auto]", "--userns is not supported"),
        ("manifest: 'kind: Pod'\ndownOptions: [--force]", "downOptions: unsupported option --force"),
    ],
)
async def test_bad_config_is_refused_before_touching_podman(
    kube: Kube, runtime_config: str, expected: str
) -> None:
    """A bad runtimeConfig is a WorkloadConfigError naming the problem; nothing is created."""
    runtime = kube.runtime()
    instance = InstanceName(workload="bad", agent=kube.agent, id="0")
    spec = WorkloadSpec(instance=instance, runtime="podman-kube", runtime_config=runtime_config)
    with pytest.raises(WorkloadConfigError) as info:
        await runtime.create(CreateRequest(spec))
    assert expected in info.value.reason
    assert kube.volumes() == {}


async def test_play_options_reach_podman(kube: Kube) -> None:
    """PlayOptions are translated to REST parameters: --start=false leaves the pod created."""
    runtime = kube.runtime()
    manifest = pod_manifest(kube.pod_name("nostart"), kube.env.image, ("c", LONG))
    spec = kube_spec(
        kube.agent,
        "nostart",
        manifest,
        playOptions=["--start=false", "--annotation", "ank=yes", "--no-hosts"],
    )
    async with watching(runtime) as watch:
        await runtime.create(CreateRequest(spec))
        await watch.wait_for(spec.instance, is_(State.PENDING_STARTING, "starting container"))
        container = kube.env.inspect(f"nostart-{kube.suffix}-c")
        config = container["Config"]
        assert isinstance(config, dict)
        assert config["Annotations"]["ank"] == "yes"
        await runtime.delete(spec.instance)


async def test_exit_during_a_podman_service_outage_is_reported_when_it_is_back(kube: Kube) -> None:
    """Stream and relist recover after the service restarts; nothing is missed."""
    runtime = kube.runtime()
    spec = kube_spec(kube.agent, "outage", pod_manifest(kube.pod_name("outage"), kube.env.image, ("c", LONG)))
    async with watching(runtime) as watch:
        await runtime.create(CreateRequest(spec))
        await watch.wait_for(spec.instance, is_(State.RUNNING_OK))
        kube.env.stop_service()
        try:
            kube.env.podman("pod", "kill", f"outage-{kube.suffix}")
        finally:
            kube.env.start_service()
        await watch.wait_for(spec.instance, is_(State.FAILED_EXEC_FAILED, "Exit code: '137'"))
        await runtime.delete(spec.instance)
    assert kube.volumes() == {}


async def test_replace_play_option_tears_down_a_pod_of_the_same_name_first(kube: Kube) -> None:
    """PlayOptions --replace: like the remote CLI, kube down before kube play."""
    name = kube.pod_name("repl")
    kube.env.podman("pod", "create", "--name", name)
    old = kube.pod_ids(name)
    runtime = kube.runtime()
    manifest = pod_manifest(name, kube.env.image, ("c", LONG))
    spec = kube_spec(kube.agent, "repl", manifest, playOptions=["--replace"])
    runtime_id = await runtime.create(CreateRequest(spec))
    assert kube.pod_ids(name) == [runtime_id]
    assert runtime_id not in old
    await runtime.delete(spec.instance)


async def test_delete_while_podman_is_unreachable_fails_and_keeps_everything(kube: Kube) -> None:
    """An unreachable Podman is never mistaken for 'already gone' (a failed delete keeps the volumes)."""
    first = kube.runtime()
    name = kube.pod_name("down")
    spec = kube_spec(kube.agent, "down", pod_manifest(name, kube.env.image, ("c", LONG)))
    await first.create(CreateRequest(spec))
    second = kube.runtime()  # nothing in memory: delete must read the bookkeeping volumes
    kube.env.stop_service()
    try:
        with pytest.raises(RuntimeDeleteFailed):
            await second.delete(spec.instance)
    finally:
        kube.env.start_service()
    assert len(kube.pod_ids(name)) == 1
    assert set(kube.volumes()) == {f"{spec.instance}.config", f"{spec.instance}.pods"}
    await second.delete(spec.instance)
    assert kube.pod_ids(name) == []
    assert kube.volumes() == {}


async def test_workload_name_podman_cannot_take_is_refused_and_touches_no_other_workload(
    kube: Kube,
) -> None:
    """A name outside Podman's object-name rule is a WorkloadConfigError naming the rule, raised
    before any call: a name crafted to end a REST path early (``?``) leaves ``cache`` intact."""
    runtime = kube.runtime()
    cache = kube_spec(kube.agent, "cache", pod_manifest(kube.pod_name("cache"), kube.env.image, ("c", LONG)))
    await runtime.create(CreateRequest(cache))
    volumes_before = kube.volumes()
    pods_before = kube.pod_ids(f"cache-{kube.suffix}")
    manifest = pod_manifest(kube.pod_name("evil"), kube.env.image, ("c", LONG))
    for workload in ("cache?", f"{cache.instance}.config?", "a b", "-x", "cache#"):
        spec = kube_spec(kube.agent, workload, manifest)
        with pytest.raises(WorkloadConfigError) as info:
            await runtime.create(CreateRequest(spec))
        assert "is not accepted by Podman (only letters, digits, '_', '.' and '-'" in info.value.reason
        assert repr(str(spec.instance)) in info.value.reason
        await runtime.delete(spec.instance)  # a delete of the refused workload finds nothing of cache's
    assert kube.volumes() == volumes_before
    assert kube.pod_ids(f"cache-{kube.suffix}") == pods_before
    assert kube.pod_ids(f"evil-{kube.suffix}") == []
    await runtime.delete(cache.instance)
    assert kube.volumes() == {}


async def test_names_and_ids_are_one_path_segment_in_every_rest_call(kube: Kube) -> None:
    """A name holding ``?``, ``#`` or ``/`` addresses only the object of exactly that name: the
    volume and the pod of ``cache`` stay, whatever is appended to their names."""
    runtime = kube.runtime()
    cache = kube_spec(kube.agent, "cache", pod_manifest(kube.pod_name("cache"), kube.env.image, ("c", LONG)))
    pod_id = await runtime.create(CreateRequest(cache))
    volume = f"{cache.instance}.config"
    volumes_before = kube.volumes()
    api = KubeApi(kube.connection)
    for tail in ("?x", "#x", "/../x", "?force=true"):
        assert await asyncio.to_thread(api.read_volume, volume + tail) is None
        await asyncio.to_thread(api.remove_volume, volume + tail)
        await asyncio.to_thread(api.remove_pod, pod_id + tail)
    assert kube.volumes() == volumes_before
    assert kube.pod_ids(f"cache-{kube.suffix}") == [pod_id]
    read = await asyncio.to_thread(api.read_volume, volume)
    assert read is not None and read.data == b64_no_pad(cache.runtime_config)
    await runtime.delete(cache.instance)


@pytest.mark.root  # rootless Podman on cgroup v1 cannot pause (no freezer delegation)
async def test_delete_of_a_paused_pod_completes(kube: Kube) -> None:
    """A pod whose containers are paused is still torn down: pods and volumes are gone."""
    runtime = kube.runtime()
    spec = kube_spec(kube.agent, "frozen", pod_manifest(kube.pod_name("frozen"), kube.env.image, ("c", LONG)))
    async with watching(runtime) as watch:
        await runtime.create(CreateRequest(spec))
        await watch.wait_for(spec.instance, is_(State.RUNNING_OK))
        kube.env.podman("pod", "pause", f"frozen-{kube.suffix}")
        await watch.wait_for(spec.instance, is_(State.FAILED_UNKNOWN))
        await runtime.delete(spec.instance)
    assert kube.pod_ids(f"frozen-{kube.suffix}") == []
    assert kube.volumes() == {}
