"""tfprune layers: `ChannelGate` (budget tapering)."""

from tfprune.layers.gates import ChannelGate, UnitInterval, iter_gates

__all__ = ["ChannelGate", "UnitInterval", "iter_gates"]
