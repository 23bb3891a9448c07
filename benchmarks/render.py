"""Published benchmark figures, computed from the result files.

A page never types a benchmark number by hand. It holds a block

    <!-- figure: FAMILY.NAME ARG ... -->TEXT<!-- /figure -->

and FAMILY.NAME is a function in `benchmarks/figures/` that computes TEXT (a
number, a sentence, table rows) from `benchmarks/results/*.json`. A block
whose TEXT has several lines is written with blank lines around it, so a
table inside it renders as a table. This script rewrites every block of the
pages (README.md, docs/**/*.md, benchmarks/results/README.md and the
examples' headers); `--check` changes nothing and exits 1 listing each
block that differs from what its result file gives.

    python benchmarks/render.py            # re-render after a benchmark run
    python benchmarks/render.py --check    # what tests/test_published_figures.py runs

It imports neither Keras nor tfprune (JSON and string formatting only).
"""

import argparse
import glob
import os
import re
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import figures  # noqa: E402

# A call starts with a lower-case dotted name (`run.record`), so prose that
# shows the syntax with a placeholder (`FAMILY.NAME`) is not a block.
BLOCK = re.compile(r"<!-- figure: (?P<call>[a-z0-9_]+\.[a-z0-9_.]+(?: [^>]*?)?) -->(?P<text>.*?)<!-- /figure -->",
                   re.S)


def pages(root=ROOT):
    """The files that may publish figures, relative to `root`."""
    found = ["README.md", os.path.join("benchmarks", "results", "README.md")]
    found += sorted(glob.glob(os.path.join("docs", "**", "*.md"), root_dir=root, recursive=True))
    found += sorted(glob.glob(os.path.join("examples", "*.py"), root_dir=root))
    return [p for p in found if os.path.exists(os.path.join(root, p))]


def compute(call):
    """The text of one block: `call` is 'NAME ARG ...' (shell-like quoting)."""
    name, *args = shlex.split(call)
    if name not in figures.FIGURES:
        raise KeyError(f"no figure function {name!r} in benchmarks/figures/")
    text = str(figures.FIGURES[name](*args))
    return f"\n\n{text}\n\n" if "\n" in text else text


def render(text):
    """(new text, [(call, old, new)] for each block that changed)."""
    stale = []

    def replace(match):
        new = compute(match.group("call"))
        if new != match.group("text"):
            stale.append((match.group("call"), match.group("text"), new))
        return f"<!-- figure: {match.group('call')} -->{new}<!-- /figure -->"

    return BLOCK.sub(replace, text), stale


def blocks(path, root=ROOT):
    """The calls of the blocks in one page."""
    with open(os.path.join(root, path), encoding="utf-8") as f:
        return [m.group("call") for m in BLOCK.finditer(f.read())]


def check(paths=None, root=ROOT, write=False):
    """{page: [(call, old, new)]} of the stale blocks; `write` rewrites them."""
    result = {}
    for path in paths or pages(root):
        full = os.path.join(root, path)
        with open(full, encoding="utf-8") as f:
            text = f.read()
        new, stale = render(text)
        if stale:
            result[path] = stale
            if write:
                with open(full, "w", encoding="utf-8") as f:
                    f.write(new)
    return result


def describe(stale):
    lines = []
    for path, items in stale.items():
        for call, old, new in items:
            lines.append(f"{path}: <!-- figure: {call} --> says {old.strip()!r}, the result file gives {new.strip()!r}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    parser.add_argument("paths", nargs="*", help="pages (default: every page)")
    args = parser.parse_args(argv)
    stale = check(args.paths, write=not args.check)
    if args.check and stale:
        print(describe(stale) + "\nRun: python benchmarks/render.py", file=sys.stderr)
        return 1
    for path, items in stale.items():
        print(f"{path}: {len(items)} block(s) re-rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
