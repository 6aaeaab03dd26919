"""One way to make and drive either server double, so a test can run against both dialects.

Both doubles share the test API (``start``, ``stop``, ``restart``, ``address``,
``states``, ``state_of``, ``wait_until``, ``wait_for_state``, ``wait_for_agent``,
``delete_workload``, ``received``, ``sent``, ``disconnects``); what differs is the
protobuf of their desired state. The helpers here take manifests as YAML text in
the v0.1 shape (``apiVersion: v0.1``, tags as a list of ``{key, value}``),
which the v1.0.1 double reads as well.
"""

from __future__ import annotations

from typing import Literal

from ankaios_agent.proto import ankaios_pb2 as pb
from tests.server_double import ServerDouble
from tests.server_double import state_from_yaml as v0_state_from_yaml
from tests.server_double_v1 import ServerDoubleV1, TlsMaterial
from tests.server_double_v1 import state_from_yaml as v1_state_from_yaml

Dialect = Literal["v0.3.1", "v1.0.1"]
DIALECTS: tuple[Dialect, ...] = ("v0.3.1", "v1.0.1")
Double = ServerDouble | ServerDoubleV1


def make_double(dialect: Dialect, manifest: str | None = None, tls: TlsMaterial | None = None) -> Double:
    if dialect == "v0.3.1":
        if tls is not None:
            raise ValueError("the v0.3.1 server speaks plain HTTP/2 only")
        return ServerDouble(v0_state_from_yaml(manifest) if manifest else None)
    return ServerDoubleV1(v1_state_from_yaml(manifest) if manifest else None, tls=tls)


def server_url(double: Double) -> str:
    """What to give the agent as --server-url."""
    if isinstance(double, ServerDoubleV1):
        return double.url
    return f"http://{double.address}"


async def apply_manifest(double: Double, manifest: str) -> list[str]:
    """Add or replace the manifest's workloads (like ``ank apply``); the added instance names."""
    if isinstance(double, ServerDoubleV1):
        return list((await double.apply_manifest(manifest)).addedWorkloads)
    state = v0_state_from_yaml(manifest)
    masks = [f"desiredState.workloads.{name}" for name in sorted(state.workloads)]
    success = await double.set_state(pb.CompleteState(desiredState=state), masks)
    return list(success.addedWorkloads)


def workload_names(double: Double) -> set[str]:
    """Names of the workloads in the desired state."""
    if isinstance(double, ServerDoubleV1):
        return set(double.desired.workloads.workloads)
    return set(double.desired.workloads)


async def set_desired(double: Double, manifest: str) -> None:
    """Replace the whole desired state (like ``ank set state`` with an empty mask) and tell the agents."""
    if isinstance(double, ServerDoubleV1):
        await double.set_desired(v1_state_from_yaml(manifest))
    else:
        await double.set_desired(v0_state_from_yaml(manifest))


def replace_desired_quietly(double: Double, manifest: str) -> None:
    """Replace the desired state without telling anyone: what a server finds after its restart."""
    if isinstance(double, ServerDoubleV1):
        double.desired.CopyFrom(v1_state_from_yaml(manifest))
    else:
        double.desired.CopyFrom(v0_state_from_yaml(manifest))
