"""The guides cannot rot: every ```python block in docs/**/*.md and README.md runs.

A page is a tutorial: its blocks run in order in one namespace, in a fresh
temporary working directory. Three HTML comments (hidden by the renderer)
steer a page:

- `<!-- test-setup: what it provides` + code lines + `-->` runs its code at
  that point of the page, e.g. a few hundred Fashion-MNIST images as `train`
  or a weights file the guide loads. Patches made with `unittest.mock.patch`
  (`.start()`) are undone after the page.
- `<!-- no-test: reason -->` on the line before a fence skips that block
  (ImageNet, COCO, several processes ...); the skips are counted below and
  each needs a reason.
- `<!-- test-slow: reason -->` on the line before a fence runs that block
  only in the slow run (`pytest -m slow tests/test_docs_guides.py`): the
  papers' epoch budgets, kept as written; the default run leaves it out.
- `<!-- test-backend: tensorflow: reason -->` runs the page under the
  TensorFlow backend only (SavedModel export, `tf.GradientTape` loops).

Under TensorFlow, `compile` defaults to `jit_compile=False` here: compiling
a ResNet with XLA takes longer than the few steps the test trains.
"""

import glob
import os
import re
import traceback
from unittest import mock

import keras
import pytest
from conftest import BACKEND, REPO_ROOT

DOCS = os.path.join(REPO_ROOT, "docs")
# Blocks that cannot run here (data, weights or processes this machine has
# not): keep the list short; each says why.
MAX_SKIPPED = 8

FENCE = re.compile(r"^```(\S*)\s*$")
NO_TEST = re.compile(r"^<!-- no-test: (.+?) -->\s*$")
SLOW = re.compile(r"^<!-- test-slow: (.+?) -->\s*$")
BACKEND_ONLY = re.compile(r"^<!-- test-backend: tensorflow: (.+?) -->\s*$", re.M)
SETUP = re.compile(r"^<!-- test-setup: (.+)$")


def parse(text):
    """[(kind, line, source, note)] of a page in order: kind is "run",
    "skip", "slow" (note: the reason) or "setup" (note: what it provides)."""
    lines = text.splitlines()
    items, i = [], 0
    while i < len(lines):
        line = lines[i]
        setup = SETUP.match(line)
        if setup:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "-->")
            items.append(("setup", i + 2, "\n".join(lines[i + 1:end]), setup.group(1).strip()))
            i = end + 1
            continue
        fence = FENCE.match(line)
        if fence and fence.group(1):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if fence.group(1) == "python":
                previous = lines[i - 1] if i else ""
                skip, slow = NO_TEST.match(previous), SLOW.match(previous)
                kind, note = ("skip", skip.group(1)) if skip else ("slow", slow.group(1)) if slow else ("run", None)
                items.append((kind, i + 2, "\n".join(lines[i + 1:end]), note))
            i = end + 1
            continue
        i += 1
    return items


def _pages():
    """Pages relative to docs/; the repository's README.md is `../README.md`."""
    paths = sorted(glob.glob(os.path.join(DOCS, "**", "*.md"), recursive=True))
    return [os.path.relpath(p, DOCS) for p in paths] + [os.path.join("..", "README.md")]


def _read(page):
    with open(os.path.join(DOCS, page), encoding="utf-8") as f:
        return f.read()


PAGES = [p for p in _pages() if any(kind != "setup" for kind, *_ in parse(_read(p)))]


def _params():
    params = []
    for page in PAGES:
        marks = [pytest.mark.tf_only] if BACKEND_ONLY.search(_read(page)) else []
        params.append(pytest.param(page, False, id=page, marks=marks))
        if any(kind == "slow" for kind, *_ in parse(_read(page))):
            params.append(pytest.param(page, True, id=f"{page}-full", marks=marks + [pytest.mark.slow]))
    return params


def test_the_guides_have_python_blocks():
    for page in ["index.md", "getting_started.md", "lifecycle.md", "methods/admm.md", "methods/slr.md",
                 os.path.join("..", "README.md")]:
        assert page in PAGES, page


def test_few_blocks_are_skipped_and_each_says_why():
    skipped, stale = [], []
    for page in _pages():
        text = _read(page)
        items = parse(text)
        skipped += [(page, line, note) for kind, line, _, note in items if kind == "skip"]
        lines = text.splitlines()
        for n, line in enumerate(lines):
            before_fence = n + 1 < len(lines) and lines[n + 1].strip() == "```python"
            if (NO_TEST.match(line) or SLOW.match(line)) and not before_fence:
                stale.append(f"{page}:{n + 1}")
        for kind, line, _, note in items:
            if kind == "setup" and not note:
                stale.append(f"{page}:{line - 1} (test-setup says nothing)")
    assert not stale, f"no-test markers not right before a ```python fence: {stale}"
    assert all(note.strip() for *_, note in skipped)
    assert len(skipped) <= MAX_SKIPPED, "too many guide blocks skipped:\n" + "\n".join(
        f"{p}:{n}: {why}" for p, n, why in skipped)


@pytest.mark.parametrize("page, full", _params())
def test_guide_runs(page, full, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if BACKEND == "tensorflow":
        compile_ = keras.Model.compile
        monkeypatch.setattr(keras.Model, "compile",
                            lambda self, *a, **k: compile_(self, *a, **{"jit_compile": False, **k}))
    namespace = {"__name__": "docs_" + re.sub(r"\W", "_", page)}
    try:
        for kind, line, source, note in parse(_read(page)):
            if kind == "skip" or (kind == "slow" and not full):
                continue
            # Padding keeps the traceback's line numbers those of the page.
            code = compile("\n" * (line - 1) + source, os.path.normpath(os.path.join("docs", page)), "exec")
            try:
                exec(code, namespace)
            except Exception:
                what = "the test-setup" if kind == "setup" else "the block"
                where = os.path.normpath(os.path.join("docs", page))
                pytest.fail(f"{where}: {what} at line {line} failed ({BACKEND}):\n"
                            f"{traceback.format_exc()}", pytrace=False)
    finally:
        mock.patch.stopall()
        keras.backend.clear_session()
