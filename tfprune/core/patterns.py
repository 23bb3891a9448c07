"""Which layers an `include` or `exclude` list names: layer names, regular expressions or classes.

`Sparsity` checks its lists when it is built (`layer_patterns`) and selects
layers with `matches`; `to_hyperspherical` reads its `exclude` list with
`matches_any`.
"""

import re


def matches(layer, pattern):
    """Whether `layer` matches one pattern: its exact name, a regular expression over its name, or a class."""
    if isinstance(pattern, type):
        return isinstance(layer, pattern)
    if isinstance(pattern, str):
        return layer.name == pattern or re.fullmatch(pattern, layer.name) is not None
    raise TypeError(
        "Sparsity: include/exclude entries must be layer names, regular "
        f"expressions or layer classes; got {pattern!r}."
    )


def matches_any(layer, patterns):
    """Whether `layer` matches any of `patterns` (names, regexes or classes)."""
    return any(matches(layer, p) for p in patterns)


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return list(value)
    return [value]


def layer_patterns(value, argument):
    """`value` as a list of names, valid regexes or layer classes (checked now, not at wrap)."""
    patterns = _as_list(value)
    for pattern in patterns:
        if isinstance(pattern, type):
            continue
        if not isinstance(pattern, str):
            raise TypeError(
                f"Sparsity: {argument} entries must be layer names, regular expressions or "
                f"layer classes; got {pattern!r} ({type(pattern).__name__})."
            )
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(
                f"Sparsity: {argument} entry {pattern!r} is not a valid regular expression "
                f"({err}); escape it with re.escape for a literal name."
            ) from None
    return patterns
