"""The examples gallery cannot drift: every examples/*.py script has the
gallery header (what it shows, its measured --smoke time, its full run) and
a row in docs/examples.md with the same smoke time; a full-run figure taken
from benchmarks/results/ is a figure block equal to its result file
(benchmarks/render.py)."""

import ast
import glob
import os
import re
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import render  # noqa: E402

SCRIPTS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO_ROOT, "examples", "[!_]*.py")))
FIELD = re.compile(r"^(Shows|Smoke|Full run): (.*?)(?=^\S|\Z)", re.M | re.S)


def header(name):
    with open(os.path.join(REPO_ROOT, "examples", f"{name}.py"), encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    assert "Gallery (docs/examples.md):" in doc, f"examples/{name}.py: no 'Gallery (docs/examples.md):' header"
    gallery = doc.split("Gallery (docs/examples.md):", 1)[1].strip() + "\n"
    return {k: " ".join(v.split()) for k, v in FIELD.findall(gallery)}


def gallery_rows():
    with open(os.path.join(REPO_ROOT, "docs", "examples.md"), encoding="utf-8") as f:
        text = f.read()
    return {m.group(1): line for line in text.splitlines()
            if (m := re.match(r"^\| \[`(\w+)\.py`\]\(\.\./examples/\1\.py\) \|", line))}


def test_there_are_examples():
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("name", SCRIPTS)
def test_header_says_what_it_shows_its_smoke_time_and_full_run(name):
    fields = header(name)
    assert set(fields) == {"Shows", "Smoke", "Full run"}, f"examples/{name}.py header fields: {sorted(fields)}"
    assert len(fields["Shows"]) > 20
    assert re.search(rf"`python examples/{name}\.py --smoke`: \d+ s measured", fields["Smoke"]), fields["Smoke"]
    full = fields["Full run"]
    # Either a measured result with its source, or "not run here" with why.
    assert "not run" in full or re.search(r"\d+(\.\d+)? ?%", full), full
    if "benchmarks/results/" in full and re.search(r"\d+(\.\d+)? ?(%|pt)", full.split("paper reports")[0]):
        # A figure from a result file is rendered from it, and equal to it now.
        page = f"examples/{name}.py"
        assert render.blocks(page, root=REPO_ROOT), f"{page} cites a result file without a figure block"
        stale = render.check([page], root=REPO_ROOT)
        assert not stale, render.describe(stale)
    if "not run" in full and re.search(r"\d+(\.\d+)? ?%", full) and "paper" in full:
        # A number from the paper is labelled as the paper's.
        assert re.search(r"paper reports|its numbers?|published", full), full


@pytest.mark.parametrize("name", SCRIPTS)
def test_listed_in_docs_examples_with_the_same_smoke_time(name):
    rows = gallery_rows()
    assert name in rows, f"add examples/{name}.py to docs/examples.md"
    smoke = re.search(r"(\d+) s measured", header(name)["Smoke"]).group(1)
    assert f"| {smoke} s |" in rows[name], f"docs/examples.md: {name}'s smoke time is not {smoke} s"


def test_docs_examples_lists_no_missing_script():
    assert set(gallery_rows()) <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_has_smoke(name):
    with open(os.path.join(REPO_ROOT, "examples", f"{name}.py"), encoding="utf-8") as f:
        source = f.read()
    assert '"--smoke"' in source or "_cifar.parse_args(" in source  # _cifar.py defines it for the CIFAR baselines
