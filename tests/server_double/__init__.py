"""Protocol-faithful in-process double of the Ankaios v0.3.1 server (tests and demo)."""

from tests.server_double.server import ServerDouble
from tests.server_double.state import StateError, load_state, state_from_yaml

__all__ = ["ServerDouble", "StateError", "load_state", "state_from_yaml"]
