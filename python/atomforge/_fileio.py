"""Atomic file writes: nothing a user already has is left half-written.

Data go to a temporary file in the target's folder, are flushed to disk, get the permissions a
plain ``open()`` would have given them, and then replace the target with ``os.replace`` (atomic
on POSIX and Windows). On any error the temporary file is removed and the target is untouched.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, IO


def atomic_write(path, write: Callable[[IO], None], binary: bool = False) -> Path:
    """Call ``write(fh)`` on a temporary file and move it over ``path``. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        mask = os.umask(0)  # mkstemp makes the file 0600; use the usual umask-based mode
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text))


def atomic_write_bytes(path, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data), binary=True)
