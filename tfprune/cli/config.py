"""`tfprune prune --config run.toml`: options from a TOML file, and the resolved run written back.

Keys are the `prune` flag names with `-` or `_` (`prune-epochs = 2` or
`prune_epochs = 2`); flags given on the command line override the file. A
key that is no flag, a value of the wrong type or a nested table is a
one-line error naming the key. `write_config` writes every option after
defaults as `config.toml` (paths made absolute, options left to the method's
default commented out), so `tfprune prune --config OUT/config.toml --out
OTHER` repeats the run.

Example:

```python
defaults = read_config("run.toml", prune_parser())   # {"model": "lenet5", ...}
write_config(args, "runs/x/config.toml")
```
"""

import argparse
import json
import os

from tfprune.cli.args import UsageError

NOT_IN_FILE = ("config", "overwrite")  # how a run is started, not what it is
PATH_KEYS = ("data_dir", "out")
SHAPE_KEYS = ("input_shape", "image_size", "block_shape")


def _actions(parser):
    return {a.dest: a for a in parser._actions if a.dest not in ("help",) + NOT_IN_FILE}


def _convert(path, key, value, action):
    flag = "--" + key.replace("_", "-")
    where = f"--config {path}: key {key!r}"
    if isinstance(action, argparse._StoreTrueAction) or (  # a switch; --refit's default is None: "not given"
            isinstance(action, argparse._StoreConstAction) and action.const is True):
        if not isinstance(value, bool):
            raise UsageError(f"{where} is the switch {flag}: write true or false; got {value!r}")
        return value
    if key.replace("-", "_") in SHAPE_KEYS and isinstance(value, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise UsageError(f"{where} must list integers (as {flag}, e.g. [32, 32, 3]); got {value!r}")
        return ",".join(str(v) for v in value)
    if isinstance(value, (dict, list)):
        raise UsageError(f"{where} must be a single value (the value of {flag}); got a "
                         f"{'table' if isinstance(value, dict) else 'list'}")
    if isinstance(value, bool):
        raise UsageError(f"{where} takes a value for {flag}, not {str(value).lower()}")
    kind = action.type
    if kind is float and isinstance(value, int):
        return float(value)
    if kind in (int, float):
        if not isinstance(value, kind):
            raise UsageError(f"{where} must be {'an integer' if kind is int else 'a number'} (as {flag}); "
                             f"got {value!r}")
        return value
    if kind is None:
        if not isinstance(value, str):
            raise UsageError(f"{where} must be a string (as {flag}); got {value!r}")
        return value
    try:  # a converter such as --verbose's
        return kind(str(value))
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        raise UsageError(f"{where}: bad value {value!r} for {flag}") from None


def read_config(path, parser):
    """The options of a TOML file as `{dest: value}`, checked against the `prune` parser.

    Args:
        path: the `--config` file.
        parser: the `prune` sub-parser (`tfprune.cli.args.prune_parser()`).

    Returns:
        A dict of parser destinations to values.
    """
    if not os.path.isfile(path):
        raise UsageError(f"--config {path!r} does not exist or is not a file; pass a TOML file (see docs/cli.md)")
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser as the tomli package
        try:
            import tomli as tomllib
        except ImportError:
            raise UsageError("--config needs Python >= 3.11 (tomllib) or the tomli package") from None
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"--config {path!r} is not valid TOML ({str(err).splitlines()[0]})") from None
    actions = _actions(parser)
    options = {}
    for key, value in raw.items():
        dest = key.replace("-", "_")
        if dest not in actions:
            known = ", ".join(sorted(actions))
            raise UsageError(f"--config {path}: unknown key {key!r}; keys are the prune flags without '--' "
                             f"({known})")
        if dest in options:
            raise UsageError(f"--config {path}: key {key!r} is given twice (with '-' and '_')")
        options[dest] = _convert(path, key, value, actions[dest])
    return options


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def write_config(args, path, parser):
    """Writes every `prune` option of `args` (after defaults) as TOML to `path`.

    Args:
        args: the resolved `prune` arguments.
        path: the file to write.
        parser: the `prune` sub-parser, for the option order.
    """
    lines = ["# The resolved options of this `tfprune prune` run; repeat it with",
             "#   tfprune prune --config config.toml --out OTHER", ""]
    for dest in _actions(parser):
        value = getattr(args, dest, None)
        if value is None:
            lines.append(f"# {dest} = (the method's default)")
            continue
        if dest in PATH_KEYS or (dest in ("model", "data") and os.path.exists(str(value))):
            value = os.path.abspath(value)
        lines.append(f"{dest} = {_toml_value(value)}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
