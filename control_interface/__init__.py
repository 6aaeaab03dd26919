"""Control interface: the FIFO pair of each workload, relayed to and from the server.

Public surface: :class:`ControlInterfaceHost` (what the lifecycle layer uses),
the settings and counters it exposes, and the codec protocol with the v0.3.1
codec.
"""

from ankaios_agent.control_interface.codec import Codec
from ankaios_agent.control_interface.codec_v0_3_1 import CodecV0_3_1
from ankaios_agent.control_interface.host import ControlInterfaceHost
from ankaios_agent.control_interface.relay_settings import RelayCounters, RelaySettings

__all__ = ["Codec", "CodecV0_3_1", "ControlInterfaceHost", "RelayCounters", "RelaySettings"]
