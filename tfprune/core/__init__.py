"""The core: what every method and every structural tool builds on.

It knows no method and no network structure: the spec protocol
(`spec`), the `Sparsity` spec (`sparsity`), projections onto sparsity sets
(`projections`, `masks`), the layer registry (`registry`), method state on
layers (`state`), `PruneWrapper` (`wrapper`), schedules, regularizers, and
cloning (`cloning`). Everything here is written against `keras.ops`.
"""

from tfprune.core import keras_layers  # noqa: F401  (registers Keras' own layers)
from tfprune.core.registry import KernelSpec, LayerInfo, layer_info, register_layer
from tfprune.core.sparsity import Sparsity
from tfprune.core.spec import PruningSpec
from tfprune.core.wrapper import PruneWrapper, iter_wrappers, wrappers_of

__all__ = [
    "KernelSpec",
    "LayerInfo",
    "PruneWrapper",
    "PruningSpec",
    "Sparsity",
    "iter_wrappers",
    "layer_info",
    "register_layer",
    "wrappers_of",
]
