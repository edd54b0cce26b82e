"""Where verified copies live, and how they are written so a crash never leaves a bad file.

Layout: `<root>/<dataset>/<published file name>` (IDX files stored decompressed, so loading
is one read plus `np.frombuffer`), and `<root>/<dataset>/SOURCE.json` recording where the
files came from. `<root>` is the explicit data dir, or `$XDG_CACHE_HOME/bnlab`
(default `~/.cache/bnlab`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

PROVENANCE_FILE = "SOURCE.json"


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/bnlab`, or `~/.cache/bnlab` when XDG_CACHE_HOME is unset or empty."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # XDG spec: a relative path is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "bnlab"


def pretty(path: Path | str) -> str:
    """The path with the home directory shown as `~`, or relative to the working directory
    when it lies beside it (`../shared/...` from a checkout), for messages and tables: a
    report names no absolute path of the machine it ran on."""
    text, home = str(path), str(Path.home())
    if home != "/" and text.startswith(home + os.sep):
        return "~" + text[len(home) :]
    here = Path.cwd()
    if Path(text).is_absolute() and here.parent != here and Path(text).is_relative_to(here.parent):
        return os.path.relpath(text, here)
    return text


def atomic_write(path: Path, chunks: Iterable[bytes]) -> Path:
    """Write `chunks` to `path` all-or-nothing: temp file in the same dir, fsync, os.replace.

    The temp file is named `.<name>.*.part`, which no reader ever looks for, so a crash
    mid-write (even SIGKILL, which skips the cleanup below) cannot leave a file that
    later passes for `path`. os.replace is atomic within one filesystem, hence same dir.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; cached data is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)  # make the rename itself durable
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not allow opening a directory; the data is synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_provenance(directory: Path, origin: str) -> None:
    """Record, next to the data, where it came from (written last, after the data)."""
    text = json.dumps({"origin": origin}, indent=1) + "\n"
    atomic_write(Path(directory) / PROVENANCE_FILE, [text.encode()])


def read_provenance(directory: Path) -> str:
    """The recorded origin, or "" when none was recorded (files placed by hand)."""
    try:
        return str(json.loads((Path(directory) / PROVENANCE_FILE).read_text())["origin"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
