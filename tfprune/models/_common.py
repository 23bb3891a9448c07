"""Helpers shared by the model builders: input checks and local weights."""

import os


def check_weights(weights, name):
    """Validates `weights=`: `None` or a path to a local file.

    Args:
        weights: `None` or a path (str / os.PathLike) to a `.weights.h5`,
            `.keras` or `.h5` file.
        name: the builder's name, for the error message.

    Returns:
        The path as a string, or `None`.
    """
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"tfprune.models.{name}: `weights` must be None or a path to a local "
            f"weights file; got {type(weights).__name__}."
        )
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(
            f"tfprune.models.{name}: weights={path!r} is not a local file. tfprune "
            "never downloads weights: pass None (random initialisation) or the "
            "path of a file saved with model.save_weights(...) / model.save(...)."
        )
    return path


def load_weights(model, path):
    """Loads local weights into `model` (no-op for `path=None`)."""
    if path is None:
        return model
    if path.endswith(".keras"):
        import keras

        source = keras.saving.load_model(path, compile=False)
        model.set_weights(source.get_weights())
    else:
        model.load_weights(path)
    return model


def scaled(channels, width_multiplier, minimum=1):
    """`channels * width_multiplier`, rounded, at least `minimum`."""
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be > 0; got {width_multiplier}.")
    return max(minimum, int(round(channels * width_multiplier)))
