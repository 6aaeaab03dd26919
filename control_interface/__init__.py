"""Control interface: the FIFO pair of each workload, relayed to and from the server.

Public surface: :class:`ControlInterfaces` (the contract the lifecycle layer
uses) plus the settings and counters it exposes.
"""

from ankaios_agent.control_interface.host import ControlInterfaces
from ankaios_agent.control_interface.relay import RelayCounters, RelaySettings

__all__ = ["ControlInterfaces", "RelayCounters", "RelaySettings"]
