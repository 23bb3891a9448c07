"""Disk checks shared by every writer: a usable folder, enough free space, one-line disk errors.

Writers (export, the CLI's `--out`, the fault-tolerant backup) check their
folder before any work (`check_folder`) and the free space against what they
are about to write where that is known (`check_free_space`); a write that
still fails for lack of space or on a read-only file system becomes a
`DiskError`, whose message is one line naming the path and the space needed
(`as_disk_error`).

Example:

```python
folder = check_folder("/tmp/backup", "BackupAndRestore")
check_free_space(folder, 12_000_000, "BackupAndRestore")
```
"""

import errno
import os
import shutil
import tempfile

#: errno values that mean "the disk cannot take this write" (full, read-only, over quota).
DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)
_MARGIN = 1.1  # file-format overhead over the raw bytes
_SLACK = 64 << 10


class DiskError(OSError):
    """A write the disk cannot take (full, read-only, not permitted); `str()` is one line."""

    def __str__(self):
        return str(self.strerror)


def size_text(nbytes):
    """`12.3 MB`: a byte count for messages."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} B"


def _existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def reason(err):
    """An `OSError`'s cause in words (`"the disk is full"`, `"no such file or directory"`)."""
    return _why(err.errno) if getattr(err, "errno", None) else str(err)


def _why(code):
    return {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
            errno.EDQUOT: "the disk quota is exceeded"}.get(code, os.strerror(code).lower())


def check_folder(path, who):
    """`path` as a folder this process can write in, created if missing; else a one-line error.

    Args:
        path: the folder.
        who: the caller, named in the message (`"BackupAndRestore"`).

    Returns:
        `path`, unchanged.

    Raises:
        ValueError: the path (or a parent) is a file, or the folder cannot be written in.
    """
    path = os.fspath(path)
    if not str(path).strip():
        raise ValueError(f"{who}: the folder is empty; pass a directory")
    existing = _existing_ancestor(path)
    if not os.path.isdir(existing):
        where = "is" if existing == os.path.abspath(path) else "lies under"
        raise ValueError(f"{who}: {path!r} {where} {existing!r}, which is a file, not a directory")
    try:
        os.makedirs(path, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise OSError(errno.EACCES, "permission denied")
        os.rmdir(tempfile.mkdtemp(dir=path, prefix=".tfprune-probe-"))
    except OSError as err:
        raise ValueError(f"{who}: cannot write in {path!r} ({reason(err)})") from None
    return path


def check_free_space(path, needed, who):
    """Raises a `DiskError` (ENOSPC) when the disk of `path` has less than `needed` bytes (plus a margin) free.

    Args:
        path: the destination (it need not exist yet; its nearest existing folder is measured).
        needed: the bytes about to be written.
        who: the caller, named in the message.
    """
    try:
        free = shutil.disk_usage(_existing_ancestor(path)).free
    except OSError:
        return  # cannot tell: let the write itself decide
    wanted = int(needed * _MARGIN) + _SLACK
    if free < wanted:
        raise DiskError(errno.ENOSPC, f"{who}: not enough space for {path!r}: needs about {size_text(wanted)}, "
                                      f"{size_text(free)} free; free some space or write elsewhere")


def as_disk_error(err, path, who, needed=None):
    """`err` as a one-line `DiskError` naming `path` (and `needed` bytes) if the disk is full or read-only, else `None`.

    Args:
        err: the exception a write raised (`OSError`, or TensorFlow's `ResourceExhaustedError` /
            `PermissionDeniedError` whose message names the cause).
        path: the destination being written.
        who: the caller, named in the message.
        needed: the bytes the write needed, if known.
    """
    code = getattr(err, "errno", None)
    if code not in DISK_ERRNOS:
        text = str(err).lower()
        if "no space left" in text:  # TF's ResourceExhaustedError names the cause (and is also its OOM)
            code = errno.ENOSPC
        elif "read-only file system" in text:
            code = errno.EROFS
        else:
            return None
    space = f" (needs about {size_text(int(needed * _MARGIN))})" if needed and code == errno.ENOSPC else ""
    return DiskError(code, f"{who}: cannot write {path!r}: {_why(code)}{space}; free some space or write elsewhere")


def weights_size(model):
    """The bytes of `model`'s weights and its optimizer's variables (what a weights file holds)."""
    total = 0
    variables = list(model.weights)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        variables += list(optimizer.variables)
    for v in variables:
        size = 1
        for dim in v.shape:
            size *= int(dim or 1)
        total += size * _itemsize(v.dtype)
    return total


def _itemsize(dtype):
    import numpy as np

    try:
        return np.dtype(str(dtype).replace("bfloat16", "float16")).itemsize
    except TypeError:
        return 4
