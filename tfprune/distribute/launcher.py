"""Run one command as N local `tf.distribute` workers (`tfprune launch`).

Each worker is a process of its own with `TF_CONFIG` naming every worker's
`localhost:<free port>` and its own index, so
`tf.distribute.MultiWorkerMirroredStrategy()` inside the command finds the
cluster. Output is streamed line by line with a `[worker i]` prefix; the
first worker that fails (or the timeout) stops the others.

Example:

```python
from tfprune.distribute import launch
code = launch(["python", "train.py"], workers=2, timeout=600)
```
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

EXIT_TIMEOUT = 124


class WorkerFailed(RuntimeError):
    """A launched worker exited with a non-zero code."""


def free_ports(n, host="localhost"):
    """`n` distinct TCP ports free on `host` right now.

    Args:
        n: how many ports.
        host: the interface to probe.
    """
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses, index, task_type="worker"):
    """The `TF_CONFIG` JSON for worker `index` of a cluster of `addresses`.

    Args:
        addresses: `["host:port", ...]`, one per worker.
        index: this worker's position in `addresses`.
        task_type: the task type (`"worker"`).
    """
    return json.dumps({"cluster": {task_type: list(addresses)}, "task": {"type": task_type, "index": index}})


def _stream(index, pipe, out, lock):
    for line in iter(pipe.readline, ""):
        with lock:
            out.write(f"[worker {index}] {line}" if line.endswith("\n") else f"[worker {index}] {line}\n")
            out.flush()
    pipe.close()


def _stop(processes, grace=5.0):
    """SIGTERM to each running worker's process group, SIGKILL after `grace` seconds."""
    for p in processes:
        if p.poll() is None:
            with _suppress():
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in processes:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with _suppress():
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _exit_code(returncode):
    """A process's exit code as a shell reports it (killed by signal s: 128 + s)."""
    return 128 - returncode if returncode < 0 else returncode


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, ProcessLookupError)


def launch(command, workers=2, timeout=None, env=None, out=None, host="localhost", poll=0.1):
    """Runs `command` as `workers` local processes of one tf.distribute cluster.

    Args:
        command: the program and its arguments (a list of strings).
        workers: the number of worker processes (>= 1).
        timeout: seconds before every worker is stopped (exit code 124), or None.
        env: the environment of the workers (default this process's); `TF_CONFIG`
            is set per worker on top of it.
        out: where the prefixed output goes (default `sys.stdout`).
        host: the address the workers listen on.
        poll: seconds between checks of the workers.

    Returns:
        0 when every worker succeeded; else the exit code of the first worker
        seen failing (the lowest index if several at once; killed by signal `s`:
        `128 + s`), or 124 on timeout. Each failure seen is logged.

    Example:

    ```python
    launch([sys.executable, "-c", "import os; print(os.environ['TF_CONFIG'])"], workers=2)
    ```
    """
    if not command:
        raise ValueError("launch: no command given; write `tfprune launch --workers N -- python train.py`")
    if int(workers) < 1:
        raise ValueError(f"launch: workers must be >= 1; got {workers}")
    program = os.fspath(command[0])
    if shutil.which(program, path=(os.environ if env is None else env).get("PATH")) is None:
        where = "is not an executable file" if os.sep in program else "is not found on PATH"
        raise ValueError(f"launch: the command {program!r} {where}; check the command after `--`")
    out = sys.stdout if out is None else out
    addresses = [f"{host}:{port}" for port in free_ports(int(workers), host)]
    lock = threading.Lock()
    processes, threads = [], []
    base_env = dict(os.environ if env is None else env)
    try:
        for index in range(int(workers)):
            worker_env = dict(base_env, TF_CONFIG=tf_config(addresses, index), PYTHONUNBUFFERED="1")
            p = subprocess.Popen(list(command), env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)
            processes.append(p)
            t = threading.Thread(target=_stream, args=(index, p.stdout, out, lock), daemon=True)
            t.start()
            threads.append(t)
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        code = None
        while code is None:
            codes = [p.poll() for p in processes]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                with lock:
                    for index, c in failed:
                        out.write(f"[launch] worker {index} exited with code {_exit_code(c)}; stopping the others\n")
                code = _exit_code(failed[0][1])
            elif all(c == 0 for c in codes):
                code = 0
            elif deadline is not None and time.monotonic() > deadline:
                with lock:
                    out.write(f"[launch] timeout after {timeout} s; stopping the workers\n")
                code = EXIT_TIMEOUT
            else:
                time.sleep(poll)
    finally:
        _stop(processes)
        for t in threads:
            t.join(5.0)
    return code
