import os

from tfprune.report import plotting


def test_plot_run_writes_a_png_atomically(tmp_path):
    phases = [
        ("dense", {"accuracy": [0.7, 0.8], "val_accuracy": [0.72, 0.79]}),
        ("prune", {"accuracy": [0.75, 0.8], "val_accuracy": [0.7, 0.78], "sparsity": [0.6, 0.9]}),
        ("retrain", {"accuracy": [0.82], "sparsity": [0.9]}),
    ]
    path = str(tmp_path / "run.png")
    assert plotting.plot_run(phases, path, title="t") == path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 10_000
    assert os.listdir(tmp_path) == ["run.png"]
