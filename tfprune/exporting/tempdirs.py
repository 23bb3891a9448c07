"""Temporary folders next to a destination, named by the process that owns them.

Outputs are written to a hidden folder beside their destination and renamed
into place, so a destination is either absent or complete. A process killed
outright (SIGKILL, power loss) cannot remove its folder; the name carries its
PID (`.tfprune-<kind>-<pid>-<random>`), and the next run removes the folders of
processes that no longer exist, keeping those of live ones.
"""

import os
import re
import shutil
import tempfile

_NAME = re.compile(r"^\.tfprune-(?P<kind>[a-z]+)-(?P<pid>\d+)-")


def _alive(pid):
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return True  # cannot tell: keep the folder
    return True


def remove_stale(parent, kind):
    """Removes `.tfprune-<kind>-<pid>-*` folders in `parent` whose process is gone.

    Args:
        parent: the directory to clean.
        kind: the folder kind (`"export"`, `"run"`).

    Returns:
        The list of removed paths.
    """
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        match = _NAME.match(name)
        if not match or match.group("kind") != kind or _alive(int(match.group("pid"))):
            continue
        path = os.path.join(parent, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def make_temp_dir(parent, kind):
    """A new `.tfprune-<kind>-<pid>-*` folder in `parent`, stale siblings removed first.

    Args:
        parent: the directory the destination will be renamed into.
        kind: the folder kind (`"export"`, `"run"`).

    Returns:
        The path of the new, empty folder.
    """
    remove_stale(parent, kind)
    return tempfile.mkdtemp(dir=parent, prefix=f".tfprune-{kind}-{os.getpid()}-")
