"""`--config` files: keys, types, precedence, and the resolved config written back."""

import os
import re

import pytest

import tfprune
from tfprune.cli import config, methods, parse
from tfprune.cli.args import UsageError, prune_parser


def _write(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


def test_keys_with_dashes_or_underscores_and_types(tmp_path):
    path = _write(tmp_path, 'model = "vgg16_cifar"\nprune-epochs = 2\nlearning_rate = 1\nshrink = true\n'
                            'input-shape = [32, 32, 3]\nverbose = 0\n')
    options = config.read_config(path, prune_parser())
    assert options == {"model": "vgg16_cifar", "prune_epochs": 2, "learning_rate": 1.0, "shrink": True,
                       "input_shape": "32,32,3", "verbose": 0}


def test_block_shape_from_the_file_or_the_command_line_reaches_the_spec(tmp_path):
    path = _write(tmp_path, 'granularity = "block"\nblock-shape = [1, 16]\n')
    for argv, shape in ((["prune", "--config", path], (1, 16)),
                        (["prune", "--granularity", "block", "--block-shape", "2x8"], (2, 8)),
                        (["prune", "--granularity", "block"], (1, 4))):
        args = parse(argv)
        methods.resolve_method_options(args)
        spec = methods.spec_of(args)
        assert (spec.kind, spec.block_shape, spec.target) == ("block", shape, 0.9)


def test_scope_erk_spreads_the_sparsity_over_the_model_by_layer_size():
    args = parse(["prune", "--sparsity", "0.7", "--scope", "erk"])
    methods.resolve_method_options(args)
    model = tfprune.models.lenet5()
    spec = methods.spec_of(args, model)
    assert spec.target == tfprune.erk_sparsity(model, 0.7).target
    assert spec.target["fc1"] > 0.7 > spec.target.get("conv1", 0.0)  # the big layer takes the cut
    args = parse(["prune", "--scope", "erk", "--granularity", "2:4"])
    with pytest.raises(UsageError, match="--scope erk spreads one fraction over the layers"):
        methods.resolve_method_options(args)


def test_refit_is_a_one_shot_switch_in_the_file_and_on_the_command_line(tmp_path):
    path = _write(tmp_path, 'method = "sparsegpt"\nrefit = true\n')
    args = parse(["prune", "--config", path])
    methods.resolve_method_options(args)
    assert args.refit is True
    args = parse(["prune", "--refit"])  # --method magnitude
    with pytest.raises(UsageError, match="--refit does not apply to --method magnitude"):
        methods.resolve_method_options(args)


def test_the_command_line_overrides_the_file(tmp_path):
    path = _write(tmp_path, 'sparsity = 0.5\nbatch_size = 16\nout = "from_file"\n')
    args = parse(["prune", "--config", path, "--sparsity", "0.7"])
    assert (args.sparsity, args.batch_size, args.out) == (0.7, 16, "from_file")


@pytest.mark.parametrize("text, message", [
    ("epochs = 3\n", r"unknown key 'epochs'; keys are the prune flags"),
    ('batch-size = "big"\n', r"key 'batch-size' must be an integer"),
    ("shrink = 1\n", r"key 'shrink' is the switch --shrink: write true or false"),
    ("[model]\nname = 'x'\n", r"key 'model' must be a single value"),
    ("sparsity = true\n", r"key 'sparsity' takes a value for --sparsity"),
    ("prune-epochs = 1\nprune_epochs = 2\n", r"given twice"),
    ("model = \n", r"is not valid TOML"),
    ("config = 'other.toml'\n", r"unknown key 'config'"),
])
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(UsageError) as info:
        config.read_config(_write(tmp_path, text), prune_parser())
    assert len(str(info.value).splitlines()) == 1 and re.search(message, str(info.value)), str(info.value)


def test_a_missing_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist or is not a file"):
        config.read_config(str(tmp_path / "none.toml"), prune_parser())


def test_written_config_reads_back_to_the_same_options(tmp_path):
    args = parse(["prune", "--out", "runs/x", "--method", "tapering", "--budget", "0.25", "--data", "it's \"odd\""])
    path = str(tmp_path / "config.toml")
    config.write_config(args, path, prune_parser())
    text = open(path).read()
    assert "# sparsity = (the method's default)" in text and "overwrite" not in text
    back = config.read_config(path, prune_parser())
    expected = {k: v for k, v in vars(args).items() if v is not None and k not in ("config", "overwrite", "command")}
    assert back.pop("out") == os.path.abspath("runs/x")  # paths are written absolute
    expected.pop("out")
    assert back == expected
