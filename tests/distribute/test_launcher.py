"""`tfprune.distribute.launch` and `tfprune launch`: TF_CONFIG per worker on free
localhost ports, prefixed output, the first failure or the timeout stops the rest."""

import io
import json
import re
import sys
import time

import pytest

from tfprune import cli
from tfprune.distribute import launch, tf_config
from tfprune.distribute.launcher import EXIT_TIMEOUT

PRINT_CONFIG = "import os; print(os.environ['TF_CONFIG'])"


def _configs(text):
    found = {}
    for line in text.splitlines():
        match = re.match(r"\[worker (\d+)\] (\{.*\})$", line)
        if match:
            found[int(match.group(1))] = json.loads(match.group(2))
    return found


def test_each_worker_gets_its_index_and_the_same_cluster_of_free_localhost_ports():
    log = io.StringIO()
    assert launch([sys.executable, "-c", PRINT_CONFIG], workers=3, timeout=60, out=log) == 0
    configs = _configs(log.getvalue())
    assert sorted(configs) == [0, 1, 2]
    cluster = configs[0]["cluster"]["worker"]
    assert len(set(cluster)) == 3 and all(a.startswith("localhost:") for a in cluster)
    for index, config in configs.items():
        assert config == json.loads(tf_config(cluster, index))


def test_a_failing_worker_stops_the_others_with_its_exit_code():
    code = ("import json, os, sys, time\n"
            "i = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
            "print('up', flush=True)\n"
            "sys.exit(3) if i == 1 else time.sleep(120)\n")
    log = io.StringIO()
    start = time.monotonic()
    assert launch([sys.executable, "-c", code], workers=2, timeout=60, out=log) == 3
    # launch returns once every worker has ended: worker 0 (sleeping 120 s) was stopped.
    assert time.monotonic() - start < 30
    text = log.getvalue()
    assert "[worker 1] up" in text  # (worker 0 may be stopped before it prints)
    assert "[launch] worker 1 exited with code 3; stopping the others" in text


def test_the_timeout_stops_every_worker():
    log = io.StringIO()
    start = time.monotonic()
    assert launch([sys.executable, "-c", "import time; time.sleep(120)"], workers=2, timeout=1, out=log) == EXIT_TIMEOUT
    assert time.monotonic() - start < 30
    assert "[launch] timeout after 1 s" in log.getvalue()


@pytest.mark.parametrize("command, message", [
    ([], "no command given"),
])
def test_launch_rejects_no_command(command, message):
    with pytest.raises(ValueError, match=message):
        launch(command)


def test_cli_launch_runs_the_command_after_the_double_dash(capsys):
    assert cli.main(["launch", "--workers", "2", "--timeout", "60", "--", sys.executable, "-c", PRINT_CONFIG]) == 0
    assert sorted(_configs(capsys.readouterr().out)) == [0, 1]


@pytest.mark.parametrize("argv, message", [
    (["launch", "--workers", "2"], "launch needs a command after `--`"),
    (["launch", "--workers", "0", "--", "true"], "--workers must be >= 1; got 0"),
    (["launch", "--timeout", "-1", "--", "true"], "--timeout must be a finite number of seconds > 0"),
])
def test_cli_launch_bad_arguments_are_one_line_errors(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_launch_exits_with_the_failing_workers_code():
    assert cli.main(["launch", "--timeout", "60", "--", sys.executable, "-c", "raise SystemExit(5)"]) == 5
