"""The published figures: each function reads a result file in
benchmarks/results/ and returns the text a page shows (see render.py).

Add a figure: write a function here, register it with `@figure("name")`,
put `<!-- figure: name args --><!-- /figure -->` in the page and run
`python benchmarks/render.py`. Arguments arrive as strings.

    >>> FIGURES["structured.budget_range"]("0.5")
    '0.4983–0.5000'
"""

import functools
import json
import os
import statistics

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
FIGURES = {}
NOT_RUN = "not yet run"


def figure(name):
    def register(fn):
        FIGURES[name] = fn
        return fn
    return register


@functools.lru_cache(maxsize=None)
def load(name):
    with open(os.path.join(RESULTS, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def num(x, digits=2, sign=False):
    """`x` with `digits` decimals; `sign`: always signed. Minus is U+2212."""
    text = f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"
    return text.replace("-", "−")


def span(values, digits=2):
    lo, hi = min(values), max(values)
    return num(lo, digits) if num(lo, digits) == num(hi, digits) else f"{num(lo, digits)}–{num(hi, digits)}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def seeds_text(n):
    return "one seed" if n == 1 else f"{n} seeds"


# The figure functions register themselves on import.
from figures import admm_slr, deploy, oneshot, runs, transformer  # noqa: E402, F401
