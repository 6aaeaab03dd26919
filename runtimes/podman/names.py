"""Workload names as Podman object names, and names as data in REST paths.

Both runtimes turn the instance name ``<workload>.<id>.<agent>`` into Podman
object names: the podman runtime into a container name (unless the user gives
``--name``), the kube runtime into its two bookkeeping volume names. Podman
accepts only ``[a-zA-Z0-9][a-zA-Z0-9_.-]*`` for containers, pods and volumes,
so a name outside that rule is refused before anything is created, with the
rule in the message, instead of being retried against Podman's terse error.

Every name or id that goes into a REST path is one path segment: it is
percent-quoted with no safe characters, so ``?``, ``#``, ``/`` or ``..`` in a
name can never turn into a query, a fragment or another resource.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from ankaios_agent.agent.errors import WorkloadConfigError
from ankaios_agent.agent.model import InstanceName

OBJECT_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
OBJECT_NAME_RULE = "only letters, digits, '_', '.' and '-', starting with a letter or digit"


def check_object_name(instance: InstanceName, name: str, what: str, hint: str = "") -> None:
    """Raise WorkloadConfigError unless Podman accepts ``name`` as the name of a ``what``."""
    if not OBJECT_NAME.fullmatch(name):
        advice = f": {hint}" if hint else ""
        raise WorkloadConfigError(
            instance, f"{what} name {name!r} is not accepted by Podman ({OBJECT_NAME_RULE}){advice}"
        )


def segment(name: str) -> str:
    """``name`` as one quoted URL path segment."""
    return quote(name, safe="")
