"""keras-hub layers in the registry, registered on first use.

keras-hub (the optional extra `tfprune[hub]`) is slow to import, so tfprune
never imports it: `register_if_needed(model)` runs in `tfprune.wrap` and
registers keras-hub's layers through the public `register_layer` only when
the model holds a layer defined in `keras_hub` (keras-hub is then imported
already).
"""

import sys

from tfprune import _keras

_done = False


def _uses_keras_hub(model):
    return any(type(layer).__module__.startswith("keras_hub") for layer in _keras.sublayers(model, recursive=True))


def register_if_needed(model):
    """Registers keras-hub's layers once, if `model` uses any."""
    global _done
    if _done or "keras_hub" not in sys.modules or not _uses_keras_hub(model):
        return
    _done = True
