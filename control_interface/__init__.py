"""Control interface: the FIFO pair of each workload, relayed to and from the server.

Public surface: :class:`ControlInterfaceHost` (what the lifecycle layer uses),
the settings and counters it exposes, and the codec protocol. The dialects'
codecs (``codec_v0_3_1``, ``codec_v1``) are imported by the host when a
control interface of that dialect is first made, so that they and the
generated modules behind them cost nothing in an agent that never uses them.
"""

from ankaios_agent.control_interface.codec import Codec
from ankaios_agent.control_interface.host import ControlInterfaceHost
from ankaios_agent.control_interface.relay_settings import RelayCounters, RelaySettings

__all__ = ["Codec", "ControlInterfaceHost", "RelayCounters", "RelaySettings"]
