"""Writing files so that a crash at any moment leaves the previous version usable.

Every file the project writes — adapter configs and weights, exported circuits, results and
reports — goes through :func:`atomic_write`: the bytes go to a temporary file in the same
directory, are flushed to disk (``fsync``), and replace the target in one ``os.replace``; the
directory entry is then synced too. A reader sees the old file or the new one, never half of
either, and a failure removes the temporary file. New files get the permissions the umask allows
(as ``open`` would give them), not the owner-only mode of ``tempfile.mkstemp``; a replaced file
keeps its own mode.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "out" / "results.json"
    >>> write_json(path, {"accuracy": 0.9}).read_text()
    '{\\n  "accuracy": 0.9\\n}\\n'
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(
    path: str | os.PathLike[str], data: bytes | str, *, make_parents: bool = True
) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring).

    Args:
        path: the file to create or replace.
        data: its whole content; ``str`` is written as UTF-8.
        make_parents: create missing parent directories; when ``False`` a missing directory is
            an error.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: ``make_parents=False`` and the directory of ``path`` does not exist.
        OSError: the write failed; the previous file, if any, is unchanged.
    """
    path = Path(path)
    blob = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    directory = path.parent if str(path.parent) else Path(".")
    if make_parents:
        directory.mkdir(parents=True, exist_ok=True)
    elif not directory.is_dir():
        raise FileNotFoundError(
            f"expected an existing directory to write {path} into; found no {directory}"
        )
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else _default_mode()
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(directory)
    return path


def write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON (with a final newline) through :func:`atomic_write`."""
    return atomic_write(path, json.dumps(payload, indent=2) + "\n")
