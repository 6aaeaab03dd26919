"""The control interface goes into exactly the target container of a kube manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ankaios_agent.runtimes.podman_kube.control_mount import ControlMountError, inject_control_interface

FOLDER = Path("/tmp/ankaios/agent_A_io/wl.abc/control_interface")
VOLUME = {"name": "control-interface-volume", "hostPath": {"path": str(FOLDER), "type": "Directory"}}
MOUNT = {"name": "control-interface-volume", "mountPath": "/run/ankaios/control_interface"}

POD = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
---
apiVersion: v1
kind: Pod
metadata:
  name: pod_A
spec:
  volumes:
  - name: other
    emptyDir: {}
  containers:
  - name: container_A
    image: x
  - name: container_B
    image: y
    volumeMounts:
    - name: other
      mountPath: /other
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: pod_A
spec:
  template:
    spec:
      containers:
      - name: container_A
        image: x
      - name: container_B
        image: y
"""


def test_pod_target_gets_the_mount_and_no_other_container_does() -> None:
    documents = list(yaml.safe_load_all(inject_control_interface(POD, "pod_A/container_A", FOLDER)))
    assert documents[0] == yaml.safe_load(POD.split("---\n", maxsplit=1)[0])
    spec = documents[1]["spec"]
    assert spec["volumes"] == [{"name": "other", "emptyDir": {}}, VOLUME]
    target, other = spec["containers"]
    assert target["volumeMounts"] == [MOUNT]
    assert other["volumeMounts"] == [{"name": "other", "mountPath": "/other"}]


def test_deployment_pod_is_named_with_the_pod_suffix() -> None:
    (document,) = yaml.safe_load_all(inject_control_interface(DEPLOYMENT, "pod_A-pod/container_B", FOLDER))
    spec = document["spec"]["template"]["spec"]
    assert spec["volumes"] == [VOLUME]
    assert "volumeMounts" not in spec["containers"][0]
    assert spec["containers"][1]["volumeMounts"] == [MOUNT]


@pytest.mark.parametrize(
    ("manifest", "target", "message"),
    [
        (POD, None, "Control interface target not specified in runtime config."),
        (
            POD,
            "pod_A",
            "Invalid control interface target format: 'pod_A'. "
            "Expected format: '<pod_name>/<container_name>'",
        ),
        (
            POD,
            "a/b/c",
            "Invalid control interface target format: 'a/b/c'. "
            "Expected format: '<pod_name>/<container_name>'",
        ),
        (POD, "pod_B/container_A", "Cannot add Control Interface. Target pod not found 'pod_B'"),
        (DEPLOYMENT, "pod_A/container_A", "Cannot add Control Interface. Target pod not found 'pod_A'"),
        (POD, "pod_A/container_C", "Cannot add Control Interface. Target container 'container_C' not found."),
        ("metadata:\n  name: x\n", "x/y", "Manifest missing 'kind' field"),
        ("kind: Pod\nmetadata: {}\n", "x/y", "Manifest missing metadata.name"),
    ],
)
def test_refusals_name_the_problem(manifest: str, target: str | None, message: str) -> None:
    with pytest.raises(ControlMountError) as caught:
        inject_control_interface(manifest, target, FOLDER)
    assert str(caught.value) == message
