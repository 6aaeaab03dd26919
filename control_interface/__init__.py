"""Control interface: the FIFO pair of each workload, relayed to and from the server.

Public surface: :class:`ControlInterfaceHost` (what the lifecycle layer uses),
the settings and counters it exposes, and the codec protocol with the v0.3.1
codec. The dialects' codecs (``codec_v0_3_1``, ``codec_v1``) are imported by
the host when it makes the first control interface of that dialect, so that
they and the generated modules behind them cost nothing in an agent that never
uses them; ``CodecV0_3_1`` is therefore imported here on first access.
"""

from typing import TYPE_CHECKING, Any

from ankaios_agent.control_interface.codec import Codec
from ankaios_agent.control_interface.host import ControlInterfaceHost
from ankaios_agent.control_interface.relay_settings import RelayCounters, RelaySettings

if TYPE_CHECKING:
    from ankaios_agent.control_interface.codec_v0_3_1 import CodecV0_3_1

__all__ = ["Codec", "CodecV0_3_1", "ControlInterfaceHost", "RelayCounters", "RelaySettings"]


def __getattr__(name: str) -> Any:
    if name == "CodecV0_3_1":
        from ankaios_agent.control_interface.codec_v0_3_1 import CodecV0_3_1  # noqa: PLC0415

        return CodecV0_3_1
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
