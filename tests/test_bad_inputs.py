"""Issue 12: every bad input is a clear error (the catalogue).

Each case is one object in a list: an API case calls a function and expects
an exception type and message; a CLI case runs `tfprune.cli.main(argv)` in
process and expects exit code 2 and one line `tfprune: error: ...`; a few
subprocess cases run the real console script. Every case also checks that
nothing is left on disk: no `.tfprune-*` temp folder and no destination.

To add cases (mixed precision, MultiHeadAttention, ...), append `Api(...)` or
`Cli(...)` objects to `CASES`; `make(ctx)` gets a `Ctx` with the case's
temporary directory and the prepared model files.

The CLI and export write SavedModels, so a case runs on TensorFlow only
unless it says `any_backend=True` (the Python API cases that touch no
SavedModel); the tests after the catalogue are marked one by one.
"""

import contextlib
import dataclasses
import errno
import json
import os
import re
import subprocess
import sys
import warnings
import zipfile
from typing import Callable, Optional
from unittest import mock

import keras
import numpy as np
import pytest

import tfprune
from tfprune import cli, exporting, schedules
from tfprune.cli import args as args_lib
from tfprune.core import disk

# ------------------------------------------------------------------ cases


@dataclasses.dataclass
class Ctx:
    """What a case can use: its own empty `tmp` and the shared model files in `files`."""

    tmp: str
    files: str

    def file(self, name):
        return os.path.join(self.files, name)

    def out(self, name="out"):
        return os.path.join(self.tmp, name)


@dataclasses.dataclass
class Api:
    """`call(ctx)` must raise `raises` with a one-line message matching `match`."""

    id: str
    call: Callable
    raises: type
    match: str
    leaves: Optional[Callable] = None  # ctx -> path that must not exist afterwards
    any_backend: bool = False  # runs under JAX too (no SavedModel, no CLI)


@dataclasses.dataclass
class Cli:
    """`tfprune <argv(ctx)>` must exit 2 with one line matching `match`."""

    id: str
    argv: Callable
    match: str
    leaves: Optional[Callable] = None
    subprocess: bool = False  # run the real console script (costs a TF import, ~5 s)
    context: Optional[Callable] = None  # () -> a context manager the in-process run happens in
    any_backend = False


def _model():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="d1"), keras.layers.Dense(2, name="d2")])


def _lambda_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2, name="twice"),
                             keras.layers.Dense(2, name="d")])


def _unbuilt():
    return keras.Sequential([keras.layers.Dense(4)])


# --------------------------------------------------------------- model files

BAD_FILES = {  # name -> what the message says
    "missing.keras": "does not exist",
    "dangling.keras": "dangling symlink",
    "dir.keras": "is a directory",
    "empty.keras": r"is empty \(0 bytes\)",
    "random.keras": "not a zip file",
    "truncated.keras": "not a zip file",
    "text.keras": "is a text file",
    "no_config.keras": "without config.json",
    "bad_json.keras": "invalid config.json",
    "array_config.keras": "describes no Keras object",
    "bad_weights.keras": "could not be loaded by Keras",
    "custom.keras": "custom class 'MyDense' from module 'mypkg.layers'.*custom_objects",
    "new_tfprune.keras": r"holds tfprune layers \(PruneWrapper.*`import tfprune`.*tfprune.strip\(model\)",
    "model.h5": "has .h5, not .keras",
    "model.txt": "has .txt, not .keras",
    "noext": "has no extension, not .keras",
    "crc.keras": "CRC",
    "lambda.keras": r"holds a Lambda layer .*safe mode refuses.*safe_mode=False",  # issue 25: not the Keras version
}


def _rewrite(src, dst, replace):
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for name in z.namelist():
            out.writestr(name, replace.get(name, z.read(name)))


def _config_with(src, edit):
    with zipfile.ZipFile(src) as z:
        config = json.loads(z.read("config.json"))
    edit(config["config"]["layers"][1])
    return json.dumps(config)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("files"))
    plain, wrapped = os.path.join(d, "plain.keras"), os.path.join(d, "wrapped.keras")
    _model().save(plain)
    tfprune.wrap(_model(), tfprune.Sparsity(0.5)).save(wrapped)
    p = lambda name: os.path.join(d, name)  # noqa: E731
    _lambda_model().save(p("lambda.keras"))
    os.symlink(p("nowhere.keras"), p("dangling.keras"))
    os.mkdir(p("dir.keras"))
    open(p("empty.keras"), "wb").close()
    with open(p("random.keras"), "wb") as f:
        f.write(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with open(plain, "rb") as f:
        data = f.read()
    with open(p("truncated.keras"), "wb") as f:
        f.write(data[: len(data) // 2])
    for name in ("text.keras", "model.h5", "model.txt", "noext"):
        with open(p(name), "w") as f:
            f.write("not a model\n")
    with zipfile.ZipFile(p("no_config.keras"), "w") as z:
        z.writestr("metadata.json", "{}")
    _rewrite(plain, p("bad_json.keras"), {"config.json": "{not json"})
    _rewrite(plain, p("array_config.keras"), {"config.json": "[1, 2]"})
    _rewrite(plain, p("bad_weights.keras"), {"model.weights.h5": b"garbage"})

    def custom(layer):
        layer.update(class_name="MyDense", module="mypkg.layers", registered_name="mypkg>MyDense")

    def newer(layer):
        layer.update(class_name="PruneWrapperV9", registered_name="tfprune>PruneWrapperV9")

    _rewrite(plain, p("custom.keras"), {"config.json": _config_with(plain, custom)})
    _rewrite(wrapped, p("new_tfprune.keras"), {"config.json": _config_with(wrapped, newer)})
    # A stored (uncompressed) config.json with one byte flipped: the zip is intact, the CRC not.
    with zipfile.ZipFile(plain) as z, zipfile.ZipFile(p("crc.keras"), "w", zipfile.ZIP_STORED) as out:
        for name in z.namelist():
            out.writestr(name, z.read(name))
    with open(p("crc.keras"), "rb") as f:
        raw = bytearray(f.read())
    at = raw.index(b'"class_name"')
    raw[at + 1] ^= 0x20
    with open(p("crc.keras"), "wb") as f:
        f.write(bytes(raw))
    return d


def _file_cases():
    cases = []
    for name, message in BAD_FILES.items():
        quoted = re.escape(name)
        cases.append(Api(f"load_model[{name}]", lambda c, n=name: exporting.load_model(c.file(n)),
                         exporting.ModelFileError, f"{quoted}.*{message}"))
        cases.append(Cli(f"report[{name}]", lambda c, n=name: ["report", c.file(n)], f"{quoted}.*{message}"))
        cases.append(Cli(f"export[{name}]", lambda c, n=name: ["export", c.file(n), c.out(), "--tflite"],
                         f"{quoted}.*{message}", leaves=lambda c: c.out()))
    cases += [
        Api("load_model[None]", lambda c: exporting.load_model(None), TypeError, "path must be a str"),
        Api("load_model['']", lambda c: exporting.load_model(""), exporting.ModelFileError, "path is empty"),
        Cli("report['']", lambda c: ["report", ""], "path is empty"),
    ]
    return cases


# ------------------------------------------------------------ CLI arguments

PRUNE_FLAGS = [  # (flag values, message)
    (["--limit", "0"], r"--limit must be >= 1"),
    (["--limit", "-5"], r"--limit must be >= 1.*got -5"),
    (["--limit", "abc"], "argument --limit: invalid int value"),
    (["--learning-rate", "nan"], r"--learning-rate must be a finite number > 0; got nan"),
    (["--learning-rate", "inf"], r"--learning-rate must be a finite number > 0; got inf"),
    (["--learning-rate=-inf"], r"--learning-rate must be a finite number > 0; got -inf"),
    (["--learning-rate", "-inf"], r"argument --learning-rate: expected one argument \(a value starting with '-'"),
    (["--learning-rate", "0"], r"--learning-rate must be a finite number > 0; got 0.0"),
    (["--learning-rate", "-1"], r"--learning-rate must be a finite number > 0"),
    (["--learning-rate", "fast"], "argument --learning-rate: invalid float value"),
    (["--dense-epochs", "-1"], r"--dense-epochs must be >= 0"),
    (["--retrain-epochs", "-3"], r"--retrain-epochs must be >= 0"),
    (["--prune-epochs", "0"], r"--prune-epochs must be >= 1"),
    (["--prune-epochs", "-2"], r"--prune-epochs must be >= 1"),
    (["--batch-size", "0"], r"--batch-size must be >= 1"),
    (["--batch-size", "-8"], r"--batch-size must be >= 1"),
    (["--batch-size", "1.5"], "argument --batch-size: invalid int value"),
    (["--seed", "-1"], r"--seed must lie in \[0, 2\*\*32 - 1\]"),
    (["--seed", str(2**32)], r"--seed must lie in"),
    (["--verbose", "4"], r"--verbose must be 0, 1, 2 or 3"),
    (["--verbose", "-1"], r"--verbose must be 0, 1, 2 or 3"),
    (["--sparsity", "nan"], r"--sparsity must lie in \[0, 1\); got nan"),
    (["--sparsity", "inf"], r"--sparsity must lie in \[0, 1\)"),
    (["--sparsity", "-0.1"], r"--sparsity must lie in \[0, 1\)"),
    (["--sparsity", "1"], r"--sparsity must lie in \[0, 1\)"),
    (["--sparsity", "1.5"], r"--sparsity must lie in \[0, 1\)"),
    (["--method", "admm", "--rho", "nan"], "--rho must be a finite number; got nan"),
    (["--method", "admm", "--rho", "inf"], "--rho must be a finite number"),
    (["--method", "slr", "--rho-end", "nan"], "--rho-end must be a finite number"),
    (["--method", "admm", "--harden", "nan"], "--harden must be a finite number"),
    (["--method", "admm", "--harden", "1.5"], "`harden`.*--harden"),
    (["--method", "slr", "--rho", "-1"], "`rho` must be.*--rho"),
    (["--granularity", "2:4"],
     r"--granularity 2:4 --scope layer does not fit --model lenet5: .*'conv1'.*divisible by 4"),
    (["--granularity", "1:4"], r"--granularity 1:4 .*does not fit --model lenet5"),
    (["--granularity", "2:8"], r"--granularity 2:8 .*does not fit --model lenet5"),
    (["--granularity", "4:2"], "granularity"),
    (["--granularity", "blocks"], "unknown granularity"),
    (["--granularity", "channel", "--scope", "sideways"], "--scope must be 'layer', 'global' or 'erk'"),
    (["--model", "resnet999"], "unknown --model 'resnet999'"),
    (["--data", "imagenet_typo"], "unknown --data 'imagenet_typo': not a built-in"),
    (["--method", "obd"], "unknown --method 'obd'"),
    (["--data-dir", "/nonexistent/idx"], "--data-dir '/nonexistent/idx' is not a directory"),
    # Issue 25: a combination the method refuses is refused up front (PruningCallback.refuses).
    (["--method", "hyperspherical", "--granularity", "channel"],
     r"--method hyperspherical does not take --granularity channel --scope layer: .*'unstructured' with scope 'layer'"),
    (["--method", "hyperspherical", "--scope", "global"],
     "--method hyperspherical does not take --granularity unstructured --scope global"),
    (["--method", "hyperspherical", "--granularity", "2:4"], "--method hyperspherical does not take --granularity 2:4"),
    (["--method", "hyperspherical", "--strength", "-1"], "--strength must be a finite number >= 0"),
    (["--epochs", "3"], r"unrecognized arguments for `tfprune prune`: --epochs 3"),
    (["--bogus"], r"unrecognized arguments for `tfprune prune`: --bogus"),
]


def _cli_cases():
    cases = []
    for flags, message in PRUNE_FLAGS:
        cases.append(Cli(f"prune[{' '.join(flags)}]", lambda c, f=flags: ["prune", "--out", c.out()] + f,
                         message, leaves=lambda c: c.out()))
    blocker = lambda c: _touch(os.path.join(c.tmp, "file"))  # noqa: E731
    cases += [
        Cli("prune[--model wrapped.keras]", lambda c: ["prune", "--out", c.out(), "--model", c.file("wrapped.keras")],
            r"--model '.*wrapped.keras' is already wrapped by tfprune.*pass the dense model.*tfprune.strip",
            leaves=lambda c: c.out()),
        Cli("prune[--model lambda.keras]", lambda c: ["prune", "--out", c.out(), "--model", c.file("lambda.keras")],
            r"--model: '.*lambda.keras' holds a Lambda layer .*safe mode", leaves=lambda c: c.out()),
        Cli("prune[--out '']", lambda c: ["prune", "--out", ""], "--out is empty"),
        Cli("prune[--out under a file]", lambda c: ["prune", "--out", os.path.join(blocker(c), "run")],
            "not writable"),
        Cli("prune[--out exists]", lambda c: ["prune", "--out", _mkdir(c.out())], "exists; pass --overwrite"),
        Cli("prune[no --out]", lambda c: ["prune"], "the following arguments are required: --out"),
        Cli("no command", lambda c: [], "missing the command; choose from prune, report, export, launch"),
        Cli("--bogus", lambda c: ["--bogus"], "unknown option '--bogus' before the command; commands: prune"),
        Cli("-x prune", lambda c: ["-x", "prune"], "unknown option '-x'"),
        Cli("bogus command", lambda c: ["bogus"], "unknown command 'bogus'; choose from prune, report, export, launch"),
        Cli("report[no file]", lambda c: ["report"], "required: model"),
        Cli("report[two files]", lambda c: ["report", c.file("plain.keras"), "x"],
            "unrecognized arguments for `tfprune report`: x"),
        Cli("export[no out]", lambda c: ["export", c.file("plain.keras")], "required: out"),
        Cli("export[--bogus]", lambda c: ["export", c.file("plain.keras"), c.out(), "--bogus"],
            "unrecognized arguments for `tfprune export`: --bogus", leaves=lambda c: c.out()),
        # Destinations: checked before the model is loaded.
        Cli("export[out exists]", lambda c: ["export", c.file("plain.keras"), _mkdir(c.out())],
            r"output '.*out' exists; pass --overwrite"),
        Cli("export[tflite exists]",
            lambda c: ["export", c.file("plain.keras"), _keep(c.out(), _touch(c.out() + ".tflite")), "--tflite"],
            r"the TFLite file '.*out.tflite' exists; pass --overwrite", leaves=lambda c: c.out()),
        Cli("export[out under a file]", lambda c: ["export", c.file("plain.keras"), os.path.join(blocker(c), "m")],
            "lies under .*file', which is a file, not a directory"),
        Cli("export[out '']", lambda c: ["export", c.file("plain.keras"), ""], "output '' is not a usable destination"),
        Cli("export[out '/']", lambda c: ["export", c.file("plain.keras"), "/"],
            "output '/' is not a usable destination"),
        Cli("export[--quantize without tflite]", lambda c: ["export", c.file("plain.keras"), c.out(), "--quantize",
                                                           "float16"], "add --tflite or --format litert"),
        Cli("export[--format onnx, wrong suffix]",
            lambda c: ["export", c.file("plain.keras"), c.out(), "--format", "onnx"], "must end in '.onnx'"),
        Cli("export[--format with --tflite]",
            lambda c: ["export", c.file("plain.keras"), c.out() + ".onnx", "--format", "onnx", "--tflite"],
            "drop --tflite"),
    ]
    return cases


def _touch(path):
    with open(path, "w") as f:
        f.write("x")
    return path


def _mkdir(path):
    os.makedirs(path)
    return path


def _keep(value, *_):
    return value


# --------------------------------------------------------------- Python API


def _api_cases():
    cs, pd = schedules.ConstantSparsity, schedules.PolynomialDecay
    schedule_cases = [
        ("ConstantSparsity('0.5')", lambda: cs("0.5"), TypeError,
         r"target_sparsity must be a number; got '0.5' \(str\)"),
        ("ConstantSparsity(None)", lambda: cs(None), TypeError, "target_sparsity must be a number; got None"),
        ("ConstantSparsity(True)", lambda: cs(True), TypeError, "target_sparsity must be a number"),
        ("ConstantSparsity([0.5])", lambda: cs([0.5]), TypeError, "target_sparsity must be a number"),
        ("ConstantSparsity(nan)", lambda: cs(float("nan")), ValueError, "target_sparsity must be a finite number"),
        ("ConstantSparsity(inf)", lambda: cs(float("inf")), ValueError, "target_sparsity must be a finite number"),
        ("ConstantSparsity(-0.1)", lambda: cs(-0.1), ValueError, r"target_sparsity must lie in \[0, 1\)"),
        ("ConstantSparsity(1.0)", lambda: cs(1.0), ValueError, r"target_sparsity must lie in \[0, 1\)"),
        ("ConstantSparsity(begin_step='0')", lambda: cs(0.5, begin_step="0"), TypeError,
         "begin_step must be an integer"),
        ("ConstantSparsity(begin_step=None)", lambda: cs(0.5, begin_step=None), TypeError,
         "begin_step must be an integer"),
        ("ConstantSparsity(begin_step=-1)", lambda: cs(0.5, begin_step=-1), ValueError, "begin_step must be >= 0"),
        ("ConstantSparsity(begin_step=1.5)", lambda: cs(0.5, begin_step=1.5), ValueError,
         "begin_step must be an integer"),
        ("ConstantSparsity(begin_step=nan)", lambda: cs(0.5, begin_step=float("nan")), ValueError,
         "begin_step must be an integer"),
        ("ConstantSparsity(end_step='x')", lambda: cs(0.5, end_step="x"), TypeError, "end_step must be an integer"),
        ("ConstantSparsity(begin>end)", lambda: cs(0.5, begin_step=10, end_step=5), ValueError,
         r"end_step \(5\) must be >= begin_step \(10\)"),
        ("ConstantSparsity(frequency=0)", lambda: cs(0.5, frequency=0), ValueError, "frequency must be > 0"),
        ("ConstantSparsity(frequency=-1)", lambda: cs(0.5, frequency=-1), ValueError, "frequency must be > 0"),
        ("ConstantSparsity(frequency='10')", lambda: cs(0.5, frequency="10"), TypeError,
         "frequency must be an integer"),
        ("ConstantSparsity(frequency=None)", lambda: cs(0.5, frequency=None), TypeError,
         "frequency must be an integer"),
        ("PolynomialDecay(power=-3)", lambda: pd(0.0, 0.5, 0, 10, power=-3), ValueError, "power must be > 0"),
        ("PolynomialDecay(power=0)", lambda: pd(0.0, 0.5, 0, 10, power=0), ValueError, "power must be > 0"),
        ("PolynomialDecay(power='3')", lambda: pd(0.0, 0.5, 0, 10, power="3"), TypeError, "power must be a number"),
        ("PolynomialDecay(power=nan)", lambda: pd(0.0, 0.5, 0, 10, power=float("nan")), ValueError,
         "power must be a finite number"),
        ("PolynomialDecay(power=None)", lambda: pd(0.0, 0.5, 0, 10, power=None), TypeError, "power must be a number"),
        ("PolynomialDecay(initial='0')", lambda: pd("0", 0.5, 0, 10), TypeError, "initial_sparsity must be a number"),
        ("PolynomialDecay(final=None)", lambda: pd(0.0, None, 0, 10), TypeError, "final_sparsity must be a number"),
        ("PolynomialDecay(final=1.0)", lambda: pd(0.0, 1.0, 0, 10), ValueError, r"final_sparsity must lie in \[0, 1\)"),
        ("PolynomialDecay(end=begin)", lambda: pd(0.0, 0.5, 10, 10), ValueError,
         r"end_step \(10\) must be > begin_step"),
        ("PolynomialDecay(end<begin)", lambda: pd(0.0, 0.5, 10, 5), ValueError,
         r"end_step \(5\) must be >= begin_step"),
        ("PolynomialDecay(end_step=None)", lambda: pd(0.0, 0.5, 0, None), TypeError, "end_step must be an integer"),
    ]
    cases = [Api(i, lambda c, f=f: f(), e, m) for i, f, e, m in schedule_cases]
    wrap = lambda **kw: tfprune.wrap(tfprune.models.lenet5(), tfprune.Sparsity(0.5, **kw))  # noqa: E731
    cases += [
        Api("summary('string')", lambda c: tfprune.summary("model.keras"), TypeError,
            "model must be a built keras.Model; got str.*load_model"),
        Api("summary(None)", lambda c: tfprune.summary(None), TypeError,
            "model must be a built keras.Model; got NoneType"),
        Api("summary(42)", lambda c: tfprune.summary(42), TypeError, "got int"),
        Api("summary(unbuilt)", lambda c: tfprune.summary(_unbuilt()), ValueError, "is not built"),
        Api("exclude typo", lambda c: wrap(exclude=["logit"]), ValueError,
            r"exclude=...\) names 'logit', which matches no layer.*Layers: \['conv1', 'conv2', 'fc1', 'fc2'"),
        Api("exclude regex matching nothing", lambda c: wrap(exclude=["dense_[0-9]+"]), ValueError,
            r"'dense_\[0-9\]\+', which matches no layer"),
        Api("exclude invalid regex", lambda c: wrap(exclude=["conv["]), ValueError,
            r"exclude entry 'conv\[' is not a valid regular expression"),
        Api("exclude int", lambda c: wrap(exclude=[3]), TypeError, "exclude entries must be layer names"),
        Api("include typo", lambda c: wrap(include=["fc3"]), ValueError, "names 'fc3', which matches no layer"),
        Api("include None entry", lambda c: wrap(include=[None]), TypeError, "include entries must be layer names"),
        Api("export(model=str)", lambda c: tfprune.export("model.keras", c.out()), TypeError,
            "tfprune.export: model must be a keras.Model; got str", leaves=lambda c: c.out()),
        Api("export(path=None)", lambda c: tfprune.export(_model(), None), TypeError,
            "tfprune.export: path must be a str or os.PathLike; got NoneType"),
        Api("export(path='')", lambda c: tfprune.export(_model(), ""), ValueError,
            "tfprune.export: path '' is not a usable destination"),
        Api("export(path under a file)", lambda c: tfprune.export(_model(), os.path.join(_touch(c.out("f")), "m")),
            ValueError, "which is a file, not a directory"),
        Api("export(path exists)", lambda c: tfprune.export(_model(), _mkdir(c.out())), ValueError,
            "path '.*out' exists; pass overwrite=True"),
        Api("export(tflite exists)",
            lambda c: tfprune.export(_model(), _keep(c.out(), _touch(c.out() + ".tflite")), tflite=True),
            exporting.DestinationExistsError, r"out.tflite' exists; pass overwrite=True", leaves=lambda c: c.out()),
    ]
    return cases


def _subprocess_cases():
    return [
        Cli("console --bogus", lambda c: ["--bogus"], "unknown option '--bogus'", subprocess=True),
        Cli("console report truncated", lambda c: ["report", c.file("truncated.keras")], "not a zip file",
            subprocess=True),
        Cli("console export custom class", lambda c: ["export", c.file("custom.keras"), c.out()],
            "custom class 'MyDense'", leaves=lambda c: c.out(), subprocess=True),
        Cli("console prune --learning-rate nan", lambda c: ["prune", "--out", c.out(), "--learning-rate", "nan"],
            "--learning-rate must be a finite number", leaves=lambda c: c.out(), subprocess=True),
    ]


def _nan_model():
    wrapped = tfprune.wrap(_model(), tfprune.Sparsity(0.5))
    kernel = wrapped.get_layer("d1").prunable_weights[0]
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    return wrapped


def _attention(dim, granularity):
    inputs = keras.Input((4, dim))
    outputs = keras.layers.MultiHeadAttention(2, 4, name="mha")(inputs, inputs)
    return tfprune.wrap(keras.Model(inputs, outputs), tfprune.Sparsity(None, granularity=granularity))


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def _mixed_subclassed_tflite(ctx):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _Subclassed()
        model(np.zeros((1, 3), "float32"))
    finally:
        keras.config.set_dtype_policy("float32")
    return tfprune.export(model, ctx.out(), tflite=True)


def _model_cases():
    return [
        Api("hard_prune(NaN weights)", lambda c: tfprune.hard_prune(_nan_model()), FloatingPointError,
            r"hard_prune: NaN/Inf weights in 'd1/kernel' \(32\)"),
        Api("wrap(MultiHeadAttention dim 6, 2:4)", lambda c: _attention(6, "2:4"), ValueError,
            "'mha'.*N:M sparsity 2:4 needs the input dimension divisible by 4"),
        Api("export(tflite, mixed-precision subclassed)", _mixed_subclassed_tflite, ValueError,
            "computes in a mixed-precision dtype.*cannot be rebuilt in float32", leaves=lambda c: c.out()),
        Api("KernelSpec(layout='rows')", lambda c: tfprune.KernelSpec("kernel", layout="rows"), ValueError,
            "KernelSpec 'kernel': layout must be one of"),
        Api("LayerInfo(role='mixer')", lambda c: tfprune.LayerInfo(role="mixer"), ValueError,
            "LayerInfo: role must be one of"),
        Api("register_layer(not a class)", lambda c: tfprune.register_layer("Dense", tfprune.LayerInfo()),
            TypeError, "register_layer: expected a keras.layers.Layer subclass"),
    ]


def _hs_model(bn=True, pruned=True):
    """A hyperspherical, wrapped model with masks at the target (no training), with or without BN."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    if bn:
        x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))
    model = tfprune.wrap(tfprune.layers.to_hyperspherical(model), tfprune.Sparsity(0.5))
    if pruned:
        wrappers = tfprune.core.wrapper.wrappers_of(model, "test")
        masks = tfprune.core.masks.compute_masks(wrappers, [w.effective_weights() for w in wrappers])
        tfprune.core.masks.assign_masks(wrappers, masks)
    return model


def _weights_of(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def recover_unchanged(model, calibration, **kwargs):
    """`recover_mean` that must fail and leave every weight bit-identical."""
    before = _weights_of(model)
    try:
        tfprune.recover_mean(model, calibration=calibration, **kwargs)
    finally:
        after = _weights_of(model)
        assert all(np.array_equal(a, b) for a, b in zip(before, after)), "recover_mean changed the model"


def _recovery_cases():
    """Issue 25: recover_mean checks its calibration before it changes anything."""
    x = np.zeros((4, 6, 6, 3), "float32")
    y = np.zeros((4,), "int32")
    cases = [
        ("wrong shape", True, np.zeros((4, 5, 5, 3), "float32"), ValueError,
         r"calibration batches have shape \(4, 5, 5, 3\), but model .* takes inputs of shape \(None, 6, 6, 3\)"),
        ("wrong rank", True, np.zeros((4, 108), "float32"), ValueError, r"shape \(4, 108\)"),
        ("wrong shape, no BN", False, np.zeros((4, 5, 5, 3), "float32"), ValueError,
         r"calibration batches have shape \(4, 5, 5, 3\)"),
        ("(x, y) wrong shape", True, (np.zeros((4, 7, 7, 3), "float32"), y), ValueError, r"shape \(4, 7, 7, 3\)"),
        ("a string", True, "data", TypeError, "calibration must be data .*; got str 'data'"),
        ("a number", True, 3, TypeError, "calibration must be data .*; got int"),
        ("no batch", True, x[:0], ValueError, "calibration gave no batch"),
    ]
    out = [Api(f"recover_mean(calibration={name})", lambda c, bn=bn, d=data: recover_unchanged(_hs_model(bn), d),
               error, match, any_backend=True) for name, bn, data, error, match in cases]
    out.append(Api("recover_mean(nothing pruned yet)",
                   lambda c: recover_unchanged(_hs_model(pruned=False), (x, y)), ValueError,
                   r"layer 'conv' has target 0.5 but nothing pruned yet \(its mask is all ones\).*Hyperspherical",
                   any_backend=True))
    return out


class _Usage:
    def __init__(self, free):
        self.free, self.total, self.used = free, 1 << 30, (1 << 30) - free


@contextlib.contextmanager
def _full_disk(free=1000):
    """`shutil.disk_usage` reports a nearly full disk (the pre-checks see it)."""
    with mock.patch.object(disk.shutil, "disk_usage", lambda path: _Usage(free)):
        yield


@contextlib.contextmanager
def _failing_write(error):
    """The SavedModel write raises `error` (a full or read-only disk met during the write)."""
    def export(self, path, *args, **kwargs):
        os.makedirs(path)  # something partial, which must not stay
        raise error

    with mock.patch.object(keras.Model, "export", export):
        yield


def _export_with(context, ctx, **kwargs):
    with context:
        return tfprune.export(_model(), ctx.out(), **kwargs)


def _tf_no_space():
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(None, None, "saved_model.pb; No space left on device")


def _image_folder(ctx, bad_name, content):
    """Two class folders of 3 real PNGs each, plus one bad file in class `b` (`content`: bytes or None)."""
    root = ctx.out("images")
    for c in ("a", "b"):
        os.makedirs(os.path.join(root, c))
        for i in range(3):
            keras.utils.save_img(os.path.join(root, c, f"{i}.png"), np.full((8, 8, 1), 40 * i, "uint8"), scale=False)
    bad = os.path.join(root, "b", bad_name)
    if content is None:
        os.symlink(os.path.join(root, "nowhere.png"), bad)
    else:
        with open(bad, "wb") as f:
            f.write(content)
    return root


BAD_IMAGES = [  # (id, file name, content, message): each found before any training, naming the file
    ("text .png", "zz.png", b"not an image\n", r"'.*/b/zz.png' is not a PNG, JPEG, GIF or BMP image \(it starts "
                                                r"with b'not an i'\); remove it or replace it"),
    ("empty .jpg", "e.jpg", b"", r"'.*/b/e.jpg' is empty \(0 bytes\)"),
    ("html .JPEG", "page.JPEG", b"<html></html>", r"'.*/b/page.JPEG' is not a PNG, JPEG"),
    ("dangling .png", "gone.png", None, r"'.*/b/gone.png' cannot be read \(No such file"),
]


def _other_cases():
    """Issue 25: the other escapes, each a one-line error naming the cause and the fix."""
    return [
        *(Cli(f"prune[--data images with a {name}]",
              lambda c, f=f, b=b: ["prune", "--out", c.out(), "--data", _image_folder(c, f, b), "--input-shape",
                                   "28,28,1"], match, leaves=lambda c: c.out())
          for name, f, b, match in BAD_IMAGES),
        Cli("launch[-- /nonexistent/cmd]", lambda c: ["launch", "--", "/nonexistent/cmd", "x"],
            "launch: the command '/nonexistent/cmd' is not an executable file"),
        Cli("launch[-- no-such-program]", lambda c: ["launch", "--workers", "2", "--", "tfprune-no-such-program"],
            "launch: the command 'tfprune-no-such-program' is not found on PATH"),
        Api("launch(/nonexistent/cmd)", lambda c: tfprune.distribute.launch(["/nonexistent/cmd"]), ValueError,
            "is not an executable file"),
        Api("hard_prune(Budget model)",
            lambda c: tfprune.hard_prune(tfprune.wrap(tfprune.models.lenet5(), tfprune.Budget(0.5))), ValueError,
            r"was wrapped with tfprune.Budget .*tfprune.tapering.finalize\(model\)", any_backend=True),
    ]


def _disk_cases():
    """Issue 25: folders checked before any work; disk errors are one line naming the path."""
    blocker = lambda c: _touch(c.out("file"))  # noqa: E731
    enospc = lambda: OSError(errno.ENOSPC, "No space left on device")  # noqa: E731
    return [
        Api("export(full disk)", lambda c: _export_with(_full_disk(), c, tflite=True), disk.DiskError,
            r"tfprune.export: not enough space for '.*': needs about .*B, 1.0 kB free", leaves=lambda c: c.out()),
        Api("export(ENOSPC during the write)", lambda c: _export_with(_failing_write(enospc()), c), disk.DiskError,
            r"tfprune.export: cannot write '.*out': the disk is full \(needs about .*\); free some space",
            leaves=lambda c: c.out()),
        Api("export(TF ResourceExhausted: no space)", lambda c: _export_with(_failing_write(_tf_no_space()), c),
            disk.DiskError, "cannot write '.*out': the disk is full", leaves=lambda c: c.out()),
        Api("export(EROFS during the write)",
            lambda c: _export_with(_failing_write(OSError(errno.EROFS, "Read-only file system")), c),
            disk.DiskError, "cannot write '.*out': the file system is read-only", leaves=lambda c: c.out()),
        Api("export(under /proc)", lambda c: tfprune.export(_model(), "/proc/tfprune-nope/m"), ValueError,
            r"tfprune.export: cannot write to '/proc' \(path '/proc/tfprune-nope/m': no such file or directory\)"),
        Cli("export[under /proc]", lambda c: ["export", c.file("plain.keras"), "/proc/tfprune-nope/m"],
            r"cannot write to '/proc' \(output '/proc/tfprune-nope/m': no such file"),
        Cli("export[full disk]", lambda c: ["export", c.file("plain.keras"), c.out(), "--tflite"],
            "not enough space for", leaves=lambda c: c.out(), context=_full_disk),
        Cli("prune[--out on a full disk]", lambda c: ["prune", "--out", c.out()],
            r"tfprune prune --out: not enough space for '.*out': needs about", leaves=lambda c: c.out(),
            context=_full_disk),
        Cli("prune[--out on a read-only disk]", lambda c: ["prune", "--out", c.out()],
            r"--out '.*out' is not writable \(Read-only file system\)", leaves=lambda c: c.out(),
            context=lambda: mock.patch.object(args_lib.tempdirs.tempfile, "mkdtemp",
                                              mock.Mock(side_effect=OSError(errno.EROFS, "Read-only file system")))),
        Api("BackupAndRestore(a file)", lambda c: tfprune.distribute.BackupAndRestore(blocker(c)), ValueError,
            r"backup_dir: '.*file' is '.*file', which is a file, not a directory"),
        Api("BackupAndRestore(under a file)",
            lambda c: tfprune.distribute.BackupAndRestore(os.path.join(blocker(c), "b")), ValueError,
            r"'.*file/b' lies under '.*file', which is a file"),
        Api("keras BackupAndRestore(backup_dir(a file))",
            lambda c: keras.callbacks.BackupAndRestore(tfprune.distribute.backup_dir(blocker(c))), ValueError,
            "which is a file, not a directory"),
    ]


CASES = (_file_cases() + _cli_cases() + _api_cases() + _model_cases() + _recovery_cases() + _other_cases()
         + _disk_cases() + _subprocess_cases())


# ------------------------------------------------------------------ checks


def _leftovers(ctx, case):
    found = []
    for root in (ctx.tmp, ctx.files):
        found += [n for n in os.listdir(root) if n.startswith(".tfprune")]
    if case.leaves and os.path.lexists(case.leaves(ctx)):
        found.append(case.leaves(ctx))
    return found


def _run_console(argv):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "tfprune.cli", *argv], capture_output=True, text=True, env=env)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("tfprune:") or "Traceback" in line]
    return proc.returncode, proc.stderr, lines


def test_the_catalogue_is_large_and_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert len(CASES) >= 120
    assert sum(c.subprocess for c in CASES if isinstance(c, Cli)) <= 8


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=() if c.any_backend else pytest.mark.tf_only)
                                  for c in CASES])
def test_bad_input_is_a_clear_one_line_error(case, files, tmp_path, capsys):
    ctx = Ctx(str(tmp_path), files)
    if isinstance(case, Api):
        with pytest.raises(case.raises) as info:
            case.call(ctx)
        message = str(info.value)
        assert len(message.splitlines()) == 1, message
        assert re.search(case.match, message), message
    elif case.subprocess:
        code, stderr, lines = _run_console(case.argv(ctx))
        assert code == 2 and "Traceback" not in stderr, stderr
        assert len(lines) == 1 and lines[0].startswith("tfprune: error: "), stderr
        assert re.search(case.match, lines[0]), lines[0]
    else:
        capsys.readouterr()
        with case.context() if case.context else contextlib.nullcontext():
            code = cli.main(case.argv(ctx))
        err = capsys.readouterr().err.strip()
        assert code == 2, err
        assert len(err.splitlines()) == 1 and err.startswith("tfprune: error: "), err
        assert re.search(case.match, err), err
    assert not _leftovers(ctx, case)


def test_recover_mean_failing_while_recalibrating_puts_every_weight_back():
    """The first batch fits, a later one does not: the kernels were assigned, then restored."""
    model = _hs_model()
    good, bad = np.ones((4, 6, 6, 3), "float32"), np.ones((4, 6, 6, 4), "float32")
    with pytest.raises(Exception) as info:
        recover_unchanged(model, iter([good, bad]))
    assert not isinstance(info.value, AssertionError), info.value  # Keras' error, with the weights back
    assert not any(w.layer.mean_path for w in tfprune.core.wrapper.wrappers_of(model, "test"))
    tfprune.recover_mean(model, calibration=iter([good]))  # and it still works afterwards
    assert all(w.layer.mean_path for w in tfprune.core.wrapper.wrappers_of(model, "test"))


@pytest.mark.tf_only
def test_a_wrapped_file_loaded_without_tfprune_names_the_class_and_module(files):
    """What a user sees loading a wrapped file with plain Keras (docs/lifecycle.md)."""
    code = (
        "import keras, sys\n"
        "try:\n"
        f"    keras.models.load_model({os.path.join(files, 'wrapped.keras')!r})\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e); sys.exit(3)\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 3, proc.stderr
    assert "Could not locate class 'PruneWrapper'" in proc.stdout
    assert "'module': 'tfprune.core.wrapper'" in proc.stdout


@pytest.mark.tf_only
def test_export_on_a_real_full_disk_is_one_line_and_leaves_nothing(small_disk, monkeypatch):
    big = keras.Sequential([keras.Input((8,)), keras.layers.Dense(20_000)])  # 640 kB, twice with TFLite
    with pytest.raises(disk.DiskError, match=r"not enough space for .*needs about 1.\d MB") as info:
        tfprune.export(big, os.path.join(small_disk, "m"), tflite=True)
    assert len(str(info.value).splitlines()) == 1 and os.listdir(small_disk) == []
    monkeypatch.setattr(disk, "check_free_space", lambda *args: None)  # the write itself meets the full disk
    with pytest.raises(disk.DiskError, match=r"cannot write '.*m': the disk is full") as info:
        tfprune.export(big, os.path.join(small_disk, "m"), tflite=True)
    assert len(str(info.value).splitlines()) == 1 and os.listdir(small_disk) == []


def test_strip_of_a_never_pruned_model_warns_once_and_names_hard_prune():
    wrapped = tfprune.wrap(_model(), tfprune.Sparsity(0.5))
    with pytest.warns(UserWarning) as caught:
        tfprune.strip(wrapped)
    ours = [str(w.message) for w in caught if "tfprune.strip" in str(w.message)]
    assert len(ours) == 1 and "call tfprune.hard_prune(model)" in ours[0] and "d1, d2" in ours[0], ours
    tfprune.hard_prune(wrapped)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tfprune.strip(wrapped)
    assert not [w for w in caught if "tfprune.strip" in str(w.message)]


def test_a_layer_target_that_would_empty_a_layer_keeps_one_weight():
    """Unstructured 0.95 on a layer of 6 weights keeps 1 (round would keep 0), like global scope's floor."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, use_bias=False, name="tiny")])
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.95))
    tfprune.hard_prune(wrapped)
    kernel = keras.ops.convert_to_numpy(tfprune.strip(wrapped).get_layer("tiny").kernel)
    assert np.count_nonzero(kernel) == 1


def test_wrap_and_strip_of_an_in_memory_lambda_model_work_in_safe_mode():
    """Cloning an in-memory model deserialises no bytecode: safe mode stays on and the Lambda is kept."""
    model = _lambda_model()
    x = np.ones((2, 4), "float32")
    wrapped = tfprune.wrap(model, tfprune.Sparsity(0.5))
    stripped = tfprune.strip(tfprune.hard_prune(wrapped))
    assert isinstance(stripped.get_layer("twice"), keras.layers.Lambda)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(wrapped(x)), keras.ops.convert_to_numpy(stripped(x)),
                               rtol=1e-6)
