"""The docs cannot rot: docstring examples run, and every public name has an API entry."""

import doctest
import glob
import importlib
import inspect
import os
import pkgutil
import re

import keras
import numpy as np
import pytest
from conftest import REPO_ROOT

import tfprune

NAMESPACES = ["tfprune", "tfprune.callbacks", "tfprune.layers", "tfprune.schedules",
              "tfprune.regularizers", "tfprune.models", "tfprune.data", "tfprune.distribute"]


def _api_entries():
    entries = set()
    for path in glob.glob(os.path.join(REPO_ROOT, "docs", "api", "*.md")):
        entries |= set(re.findall(r"^::: ([\w.]+)\s*$", open(path).read(), flags=re.M))
    return entries


def test_every_public_name_has_an_api_reference_entry():
    entries = _api_entries()
    missing = [f"{ns}.{name}" for ns in NAMESPACES for name in importlib.import_module(ns).__all__
               if not name.startswith("__") and f"{ns}.{name}" not in entries]
    assert not missing, f"add these to docs/api/*.md: {missing}"
    unknown = []
    for entry in entries:
        module, _, name = entry.rpartition(".")
        if not hasattr(importlib.import_module(module), name):
            unknown.append(entry)
    assert not unknown, f"docs/api entries that do not exist: {unknown}"


def _docstring_examples():
    """(id, module, text) of every docstring holding a `>>>` example."""
    found = []
    for info in pkgutil.walk_packages(tfprune.__path__, "tfprune."):
        if info.name.endswith("cli") or ".cli" in info.name:
            continue
        module = importlib.import_module(info.name)
        own = [(k, v) for k, v in vars(module).items()
               if (inspect.isclass(v) or inspect.isfunction(v)) and v.__module__ == info.name]
        for name, obj in [(info.name, module)] + own:
            targets = [(name, obj)]
            if inspect.isclass(obj):
                targets += [(f"{name}.{k}", v) for k, v in vars(obj).items() if callable(v)]
            for label, target in targets:
                doc = inspect.getdoc(target) if not isinstance(target, str) else None
                if doc and ">>>" in doc:
                    found.append((f"{info.name}:{label}", module, doc))
    return sorted({f[0]: f for f in found}.values(), key=lambda f: f[0])


EXAMPLES = _docstring_examples()


def test_there_are_docstring_examples():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("label, module, doc", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_docstring_example_runs(label, module, doc):
    # The examples sit in ```pycon fences for the docs site: drop the fence lines.
    text = "\n".join(line for line in doc.splitlines() if not line.strip().startswith("```"))
    globs = dict(vars(module), keras=keras, np=np, tfprune=tfprune, ops=keras.ops)
    test = doctest.DocTestParser().get_doctest(text, globs, label, module.__file__, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=lambda s: None)
    result = runner.summarize(verbose=False)
    assert test.examples and result.failed == 0, (
        f"{label}: {result.failed} of {result.attempted} examples failed; "
        f"run python -m doctest on the docstring to see them")
