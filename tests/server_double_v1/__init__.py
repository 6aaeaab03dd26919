"""Protocol-faithful in-process double of the Ankaios v1.0.1 server (tests and demo)."""

from tests.server_double_v1.server import Refusal, ServerDoubleV1, TlsMaterial
from tests.server_double_v1.state import Instance, StateError, StateView, load_state, state_from_yaml

__all__ = [
    "Instance",
    "Refusal",
    "ServerDoubleV1",
    "StateError",
    "StateView",
    "TlsMaterial",
    "load_state",
    "state_from_yaml",
]
