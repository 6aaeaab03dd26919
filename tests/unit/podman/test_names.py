"""Workload names as Podman object names, and names as single quoted REST path segments."""

from __future__ import annotations

import pytest

from ankaios_agent.agent.errors import WorkloadConfigError
from ankaios_agent.agent.model import InstanceName
from ankaios_agent.runtimes.podman.names import check_object_name, segment
from ankaios_agent.runtimes.podman_kube.config import check_workload_name

ACCEPTED = ["a", "cache", "web-1", "my_app.v2", "0start", "A.b-c_d"]
REFUSED = ["", "cache?", "a b", "-x", ".x", "_x", "x/y", "x#y", "x%2F", "ümlaut", "a:b", "x\n"]


@pytest.mark.parametrize("name", ACCEPTED)
def test_names_podman_accepts_pass(name: str) -> None:
    check_object_name(InstanceName("wl", "agent", "1"), name, "container")


@pytest.mark.parametrize("name", REFUSED)
def test_other_names_are_refused_with_the_rule_in_the_message(name: str) -> None:
    with pytest.raises(WorkloadConfigError) as info:
        check_object_name(InstanceName("wl", "agent", "1"), name, "container", "rename it")
    assert info.value.reason == (
        f"container name {name!r} is not accepted by Podman "
        "(only letters, digits, '_', '.' and '-', starting with a letter or digit): rename it"
    )


@pytest.mark.parametrize(
    ("workload", "accepted"),
    [("cache", True), ("cache?", False), ("a b", False), ("-x", False), ("with.dot", True)],
)
def test_kube_workload_names_follow_the_volume_name_rule(workload: str, accepted: bool) -> None:
    instance = InstanceName(workload, "agent_A", "abc")
    if accepted:
        check_workload_name(instance)
    else:
        with pytest.raises(WorkloadConfigError, match=r"podman-kube workload name .* bookkeeping volumes"):
            check_workload_name(instance)


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("abc123", "abc123"),
        ("cache?x", "cache%3Fx"),
        ("a/../b", "a%2F..%2Fb"),
        ("x#y", "x%23y"),
        ("a b", "a%20b"),
        ("100%", "100%25"),
        ("localhost/img:1", "localhost%2Fimg%3A1"),
    ],
)
def test_a_name_is_one_path_segment(name: str, quoted: str) -> None:
    assert segment(name) == quoted
