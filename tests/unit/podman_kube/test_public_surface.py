"""The podman-kube package's public surface is small and pinned."""

from __future__ import annotations

import ankaios_agent.runtimes.podman_kube as kube
from ankaios_agent.agent.ports import Runtime


def test_public_names_are_pinned() -> None:
    assert sorted(kube.__all__) == ["KubeConfig", "PodmanKubeRuntime", "RUNTIME_NAME", "parse_kube_config"]


def test_runtime_name_is_the_reference_one() -> None:
    """Runtime names are matched exactly; this one is 'podman-kube'."""
    assert kube.RUNTIME_NAME == "podman-kube"
    assert kube.PodmanKubeRuntime.name == "podman-kube"


def test_runtime_implements_the_protocol() -> None:
    """The assignment is checked structurally by mypy (run on tests); here: the members exist."""
    runtime_type: type[Runtime] = kube.PodmanKubeRuntime
    for member in ("create", "delete", "list_owned", "events"):
        assert callable(getattr(runtime_type, member))
