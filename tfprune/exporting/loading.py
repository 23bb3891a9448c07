"""`load_model`: a `.keras` file, with one-line errors that say what is wrong.

`keras.models.load_model` answers a bad file with `BadZipFile`,
`JSONDecodeError`, `OSError` or a page-long "could not be deserialized";
`load_model` checks the file first (exists, is a file, ends in `.keras`, is a
zip archive with a valid `config.json`) and turns a failed deserialisation
into a `ModelFileError` that names the file, the problem and the fix. The
`tfprune report` and `tfprune export` commands load through it.
"""

import json
import os
import re
import zipfile

import keras

ARCHIVE_MEMBERS = ("config.json", "metadata.json")
_UNKNOWN = re.compile(r"Could not locate (class|function) '([^']+)'")


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and the fix."""


def _fail(path, problem, fix):
    raise ModelFileError(f"{path!r} {problem}; {fix}.")


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_model: path must be a str or os.PathLike; got {type(path).__name__}.")
    path = os.fspath(path)
    if not path:
        raise ModelFileError("load_model: path is empty; pass the path of a .keras file.")
    if os.path.islink(path) and not os.path.exists(path):
        _fail(path, f"is a dangling symlink (to {os.readlink(path)!r})", "point it at an existing .keras file")
    if not os.path.exists(path):
        _fail(path, "does not exist", "check the path (a .keras file written by model.save)")
    if os.path.isdir(path):
        _fail(path, "is a directory, not a .keras file", "pass the .keras file written by model.save")
    if not path.endswith(".keras"):
        ext = os.path.splitext(path)[1] or "no extension"
        _fail(path, f"has {ext}, not .keras",
              "tfprune reads Keras 3 .keras files; re-save the model with model.save('model.keras')")
    if os.path.getsize(path) == 0:
        _fail(path, "is empty (0 bytes)", "write it again with model.save(path)")
    return path


def _read_config(path):
    """The parsed `config.json` of a `.keras` archive (structure checks on the way)."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(4096)
        try:
            text = b"\0" not in head and bool(head.decode("utf-8").strip())
        except UnicodeDecodeError:
            text = False
        if text:
            _fail(path, "is a text file, not a .keras archive (a zip file)", "pass the file written by model.save")
        _fail(path, "is not a .keras archive (not a zip file: truncated, corrupt or another format)",
              "write it again with model.save(path)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                _fail(path, "is a zip file without config.json, so not a .keras model",
                      "write it with model.save(path)")
            bad = archive.testzip()
            if bad is not None:
                _fail(path, f"is corrupt ({bad!r} fails its CRC check)", "write it again with model.save(path)")
            raw = archive.read("config.json")
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as err:
        _fail(path, f"is a damaged .keras archive ({_first_line(err)})", "write it again with model.save(path)")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        _fail(path, f"has an invalid config.json ({_first_line(err)})", "write it again with model.save(path)")
    if not isinstance(config, dict) or "class_name" not in config:
        _fail(path, "has a config.json that describes no Keras object", "write it again with model.save(path)")
    return config


def _first_line(err, limit=160):
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _classes(config):
    """`(class_name, module, registered_name)` of every object in a saved config."""
    if isinstance(config, dict):
        if "class_name" in config:
            yield config["class_name"], config.get("module"), config.get("registered_name")
        for value in config.values():
            yield from _classes(value)
    elif isinstance(config, list):
        for value in config:
            yield from _classes(value)


def unknown_class_message(path, config, name):
    """The one-line explanation of a class `name` Keras could not locate in `config`."""
    modules = sorted({str(m) for c, m, _ in _classes(config) if c == name and m})
    tfprune_classes = sorted({c for c, m, _ in _classes(config) if str(m or "").startswith("tfprune")})
    if any(m.startswith("tfprune") for m in modules):
        return (
            f"{path!r} holds tfprune layers ({', '.join(tfprune_classes)}) and {name!r} is not "
            f"registered: `import tfprune` (a version that defines {name}) before loading, or save "
            "tfprune.strip(model) for a plain Keras file."
        )
    where = f" from module {modules[0]!r}" if modules else ""
    return (
        f"{path!r} uses the custom class {name!r}{where}, which is not registered: import the module "
        "that defines it (decorated with @keras.saving.register_keras_serializable()) before loading, "
        "or pass custom_objects={" + repr(name) + ": ...}."
    )


def load_model(path, compile=False, custom_objects=None, safe_mode=True):
    """Loads a `.keras` model; every failure is one `ModelFileError` line.

    Checks, in order: the path exists (a dangling symlink is named as such),
    is a file, ends in `.keras`, is not empty, is a zip archive with an
    intact `config.json` of valid JSON; then deserialises with
    `keras.models.load_model`. A class Keras cannot find is named with the
    fix (for tfprune's own layers: `import tfprune`, or save
    `tfprune.strip(model)`).

    Args:
        path: the `.keras` file.
        compile: restore the training configuration too (off: inspection
            and export need none, and it needs the custom losses).
        custom_objects: passed to `keras.models.load_model`.
        safe_mode: passed to `keras.models.load_model` (refuses lambdas).

    Returns:
        The Keras model.

    Raises:
        TypeError: `path` is not a str or path.
        ModelFileError: (a ValueError) the file cannot be loaded; the message
            names the file, the problem and the fix.

    Example:

    ```python
    model = tfprune.exporting.load_model("runs/demo/model.keras")
    print(tfprune.summary(model))
    ```
    """
    path = _check_path(path)
    config = _read_config(path)
    try:
        return keras.models.load_model(
            path, compile=compile, custom_objects=custom_objects, safe_mode=safe_mode
        )
    except Exception as err:  # Keras raises TypeError, ValueError, OSError, KeyError...
        match = _UNKNOWN.search(str(err))
        if match:
            message = unknown_class_message(path, config, match.group(2))
        elif "safe_mode" in str(err) or "unsafe_deserialization" in str(err):
            message = (
                f"{path!r} holds a Lambda layer (Python bytecode), which Keras' safe mode refuses to load; "
                "if you trust the file, load it with tfprune.exporting.load_model(path, safe_mode=False) "
                "(or keras.config.enable_unsafe_deserialization()), else rebuild the Lambda as a registered layer."
            )
        else:
            message = (
                f"{path!r} could not be loaded by Keras ({type(err).__name__}: {_first_line(err)}); "
                "check that it was written by model.save with this Keras version."
            )
    raise ModelFileError(message) from None
