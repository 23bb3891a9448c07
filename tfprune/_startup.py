"""Quiet start-up for the `tfprune` command: TensorFlow's logging off before TensorFlow loads.

`import tfprune` imports Keras, which imports TensorFlow, which prints its
C++ start-up lines (oneDNN, CPU instructions, cuInit, absl) as soon as it
loads. So the command's quieting has to run before anything else in the
package: `tfprune/__init__.py` imports this module first, and on import it
calls `quiet_for_the_command_line()`, which does something only when this process *is* the command (the console
script `tfprune` or `python -m tfprune.cli`), never for `import tfprune` in a
user's program. `--verbose 3` (or a bare `--verbose`) leaves TensorFlow's
logging as it was. Variables the user set are kept.

Example:

```python
from tfprune import _startup
_startup.quiet_tensorflow()      # before `import tensorflow`
```
"""

import os
import sys
import warnings

# Environment variables read by TensorFlow's C++ runtime, absl and gRPC at load.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "ABSL_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR",
             "GLOG_minloglevel": "3"}
NOISY_MODULES = r"(tensorflow|tensorflow_datasets|absl|google|keras|tf_keras|h5py)(\..*)?$"
TF_LOGS_VERBOSITY = 3


def is_command_line(argv0=None, orig_argv=None):
    """Whether this process is the `tfprune` command (console script or `python -m tfprune.cli`).

    Args:
        argv0: the program name (default `sys.argv[0]`).
        orig_argv: the interpreter's own arguments (default `sys.orig_argv`).

    Returns:
        True for `tfprune ...` and `python -m tfprune.cli ...`.
    """
    argv0 = (sys.argv[0] if sys.argv else "") if argv0 is None else argv0
    orig_argv = list(getattr(sys, "orig_argv", [])) if orig_argv is None else list(orig_argv)
    if os.path.basename(argv0) == "tfprune":
        return True
    return any(a == "-m" and b in ("tfprune.cli", "tfprune.cli.__main__")
               for a, b in zip(orig_argv, orig_argv[1:]))


def wants_tensorflow_logs(argv):
    """Whether the arguments ask for TensorFlow's logs: `--verbose 3`, `--verbose=3` or a bare `--verbose`.

    Args:
        argv: the command's arguments (without the program name).
    """
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--verbose":
            following = argv[i + 1] if i + 1 < len(argv) else ""
            if not following.lstrip("-").isdigit() or following == str(TF_LOGS_VERBOSITY):
                return True
        elif arg == f"--verbose={TF_LOGS_VERBOSITY}":
            return True
    return False


def quiet_tensorflow():
    """Silences TensorFlow's C++ logging, absl, gRPC and their Python warnings (user settings kept).

    Must run before TensorFlow is imported for the C++ start-up lines; the
    Python-side loggers are quieted again after import by `quiet_loggers`.
    """
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore", module=NOISY_MODULES)


def quiet_loggers():
    """After TensorFlow is imported: its Python logger and absl at ERROR."""
    import logging

    for name in ("tensorflow", "absl", "h5py", "tensorflow_datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; without it there is nothing to quiet
        pass


def import_tensorflow_quietly():
    """Imports TensorFlow with file descriptor 2 (stderr) sent to a temporary file.

    TensorFlow >= 2.20 writes its load-time lines (oneDNN, CUDA stubs) through
    absl before any log level is read, so no environment variable hides
    them; this does. If the import fails, what it wrote is replayed on
    stderr and the error propagates; without TensorFlow installed nothing
    happens.
    """
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quiet_for_the_command_line():
    """`quiet_tensorflow()` and a quiet TensorFlow import, when this process is the `tfprune` command
    and no TensorFlow logs were asked for."""
    if is_command_line() and not wants_tensorflow_logs(sys.argv[1:]):
        quiet_tensorflow()
        import_tensorflow_quietly()


quiet_for_the_command_line()
