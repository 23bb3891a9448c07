"""The package layout holds: no import cycles, private Keras API in one place,
no tfprune imports hidden in functions, small modules.

The layered import contract itself is `lint-imports` (setup.cfg), run by
`make test`; these tests check what import-linter does not.
"""

import ast
import pathlib
import re

import grimp
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "tfprune"
MODULES = sorted(p for p in ROOT.rglob("*.py"))

# Private Keras API: attribute names and the private package.
PRIVATE_KERAS = re.compile(
    r"keras\.src|\._tracker\b|_nodes_by_depth|_inputs_struct|_outputs_struct|_inbound_nodes"
    r"|_outbound_nodes|_keras_history|_call_has_training_arg|_flatten_layers|\._functional\b"
    r"|\._nodes\b|_track_variable|_distribute_strategy"
)
# tfprune imports inside functions: only where they keep TensorFlow (or the
# whole library, for `tfprune --help`) out of import time, never to dodge a cycle.
LAZY_IMPORTS_ALLOWED = {"data/mnist.py": "augment", "data/cifar.py": "augment",
                        "data/imagenet.py": "augment"}


def _relative(path):
    return path.relative_to(ROOT).as_posix()


def test_no_import_cycles_including_imports_in_functions():
    graph = grimp.build_graph("tfprune", include_external_packages=False)
    modules = sorted(graph.modules)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in modules}
    # A package imports its own submodules through __init__; a submodule
    # importing its package's public name is the same edge the other way.
    state, cycles = {}, []

    def visit(module, stack):
        state[module] = "open"
        for target in sorted(edges[module]):
            if target.startswith(module + "."):
                continue  # a package's __init__ importing its submodules
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in modules:
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_private_keras_api_only_in_the_adapter():
    offenders = []
    for path in MODULES:
        if "_keras" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if PRIVATE_KERAS.search(code):
                offenders.append(f"{_relative(path)}:{number}: {line.strip()}")
    assert not offenders, "private Keras API outside tfprune/_keras/:\n" + "\n".join(offenders)


def test_no_tfprune_imports_inside_functions():
    offenders = []
    for path in MODULES:
        allowed = LAZY_IMPORTS_ALLOWED.get(_relative(path), "")
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module + "." + a.name for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                for name in names:
                    if not name.startswith("tfprune"):
                        continue
                    if allowed is None or (allowed and name.endswith(allowed)):
                        continue
                    offenders.append(f"{_relative(path)}:{node.lineno}: {name}")
    assert not offenders, "tfprune imports inside functions:\n" + "\n".join(offenders)


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_modules_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 420, f"{_relative(path)} has {lines} lines; split it by job"


def test_public_api_is_functions_and_classes():
    import types

    import tfprune

    namespaces = {"callbacks", "layers", "schedules", "regularizers", "structure", "graph",
                  "tapering", "exporting", "models", "data"}
    for name in tfprune.__all__:
        value = getattr(tfprune, name)
        assert not isinstance(value, types.ModuleType), name
    modules = {n for n, v in vars(tfprune).items() if isinstance(v, types.ModuleType)}
    # Subpackages Python binds on import (core, methods, ...) are fine too;
    # the documented namespaces must all be there.
    assert namespaces <= modules


# Facts about Keras layer classes live in the layer registry. These modules
# may test classes or read per-layer attributes; everything else asks the
# registry (`has_role`, `channel_multiplier`, `is_elementwise`, ...).
LAYER_FACTS_ALLOWED = {
    "core/registry.py": "the registry's API",
    "core/keras_layers.py": "Keras' own entries",
    # Model builders: they make layers (and may look at what they made); they
    # know no pruning (import contract `zoo`), so they cannot ask the registry.
    "models/": "the model zoo",
    # Defines its own layer classes (subclasses of Dense/Conv2D/DepthwiseConv2D)
    # and reads its own attributes, such as `depth_multiplier`, to convert them.
    "methods/hyperspherical/layers.py": "defines the hyperspherical layers",
}
# Single tests that are mechanics, not facts pruning reads: a Lambda copy
# keeps its Python function instead of deserialising it (safe mode stays on).
LAYER_FACT_EXCEPTIONS = {("core/cloning.py", "comparison with keras.layers.Lambda")}
# Per-layer facts read as attributes: the registry's `multiplier` field says it.
LAYER_FACT_ATTRIBUTES = ("depth_multiplier",)
# Base classes, not layer kinds: testing them is structure, not a layer fact.
GENERIC_LAYER_CLASSES = ("Layer", "Wrapper", "InputLayer")


def _keras_layer_class(node):
    """`keras.layers.Name` (capitalised) anywhere in an expression, or None."""
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Attribute)
            and sub.attr[:1].isupper()
            and sub.attr not in GENERIC_LAYER_CLASSES
            and isinstance(sub.value, ast.Attribute)
            and sub.value.attr == "layers"
            and isinstance(sub.value.value, ast.Name)
            and sub.value.value.id == "keras"
        ):
            return f"keras.layers.{sub.attr}"
    return None


def layer_fact_offences(source):
    """`(line, what)` for each class test of a Keras layer and per-layer attribute read in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("isinstance", "issubclass") and len(node.args) == 2:
                name = _keras_layer_class(node.args[1])
                if name:
                    found.append((node.lineno, f"{node.func.id}(..., {name})"))
            if node.func.id in ("getattr", "hasattr") and len(node.args) >= 2:
                arg = node.args[1]
                if isinstance(arg, ast.Constant) and arg.value in LAYER_FACT_ATTRIBUTES:
                    found.append((node.lineno, f"{node.func.id}(..., {arg.value!r})"))
        elif isinstance(node, ast.Compare) and any(
            isinstance(op, (ast.Is, ast.IsNot, ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops
        ):
            name = _keras_layer_class(node)
            if name:
                found.append((node.lineno, f"comparison with {name}"))
        elif isinstance(node, ast.Attribute) and node.attr in LAYER_FACT_ATTRIBUTES:
            found.append((node.lineno, f".{node.attr}"))
    return found


def test_layer_fact_check_catches_class_tests():
    source = (
        "isinstance(x, keras.layers.BatchNormalization)\n"
        "type(x) is keras.layers.Softmax\n"
        "issubclass(c, (keras.layers.Dense, keras.layers.Conv2D))\n"
        "m = layer.depth_multiplier\n"
        "m = getattr(layer, 'depth_multiplier', 1)\n"
        "y = keras.layers.Dense(3)(x)\n"  # building a layer is fine
        "isinstance(x, keras.layers.Layer) or isinstance(x, keras.Model)\n"
    )
    assert sorted({line for line, _ in layer_fact_offences(source)}) == [1, 2, 3, 4, 5]


def test_layer_facts_only_in_the_registry():
    offenders = []
    for path in MODULES:
        relative = _relative(path)
        if any(relative.startswith(prefix) for prefix in LAYER_FACTS_ALLOWED):
            continue
        for line, what in layer_fact_offences(path.read_text()):
            if (relative, what) not in LAYER_FACT_EXCEPTIONS:
                offenders.append(f"{relative}:{line}: {what}")
    assert not offenders, (
        "facts about Keras layer classes outside the layer registry (ask tfprune.core.registry, "
        "or add a LayerInfo field in core/keras_layers.py):\n" + "\n".join(offenders)
    )
