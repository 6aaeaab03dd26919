"""podman-kube with a v1.0.1 control interface: only the target container sees the FIFOs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from ankaios_agent.agent.errors import WorkloadConfigError
from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import AccessRules, Operation, State, StateRule
from ankaios_agent.agent.ports import CreateRequest
from ankaios_agent.control_interface import ControlInterfaceHost
from tests.integration.test_kube_runtime import LONG, Kube, is_, kube, kube_spec, pod_manifest, watching

pytestmark = pytest.mark.podman
__all__ = ["kube"]  # the fixture, shared with the kube runtime tests

RULES = AccessRules(allow=(StateRule(Operation.READ, ("*",)),))
MOUNT = "/run/ankaios/control_interface"


async def test_only_the_target_container_gets_the_fifos(kube: Kube, tmp_path: Path) -> None:
    pod = kube.pod_name("cipod")
    manifest = pod_manifest(pod, kube.env.image, ("target", LONG), ("other", LONG))
    spec = kube_spec(kube.agent, "kubeci", manifest)
    config = yaml.safe_load(spec.runtime_config) | {"controlInterfaceTarget": f"{pod}/target"}
    spec = dataclasses.replace(spec, runtime_config=yaml.safe_dump(config), control_interface_access=RULES)
    host = ControlInterfaceHost(tmp_path / "io", lambda _request: None, dialect=Dialect.V1)
    folder = await host.ensure_for(spec)
    assert folder is not None
    runtime = kube.runtime()
    try:
        async with watching(runtime) as watch:
            await runtime.create(CreateRequest(spec, folder))
            await watch.wait_for(spec.instance, is_(State.RUNNING_OK))
        fifos = kube.env.podman(
            "exec",
            f"{pod}-target",
            "/bin/sh",
            "-c",
            f"test -p {MOUNT}/input && test -p {MOUNT}/output",
            check=False,
        )
        assert fifos.returncode == 0, fifos.stderr
        absent = kube.env.podman("exec", f"{pod}-other", "/bin/sh", "-c", f"test -e {MOUNT}", check=False)
        assert absent.returncode == 1, absent.stderr
    finally:
        await runtime.delete(spec.instance)
        await host.close()


async def test_missing_target_is_a_config_error(kube: Kube, tmp_path: Path) -> None:
    spec = kube_spec(
        kube.agent, "notarget", pod_manifest(kube.pod_name("notarget"), kube.env.image, ("c", LONG))
    )
    spec = dataclasses.replace(spec, control_interface_access=RULES)
    with pytest.raises(
        WorkloadConfigError, match=r"Control interface target not specified in runtime config\."
    ):
        await kube.runtime().create(CreateRequest(spec, tmp_path))
    assert kube.pod_ids(f"notarget-{kube.suffix}") == []
