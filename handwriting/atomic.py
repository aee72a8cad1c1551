"""Files that are whole or absent, JSON that any parser reads, and disk failures in words.

The promoted model, the checkpoints a run resumes from and the JSON beside them are read
by other processes while they are replaced, and a full or read-only disk must not leave
half a file behind. So every such file is written to a temporary name in the *same*
folder (a rename across file systems is a copy, and a copy can stop half-way), flushed to
disk, then ``os.replace``d over the old one. The temporary file is created with the
permissions of any new file (``0666`` less the umask), not ``mkstemp``'s ``0600``: the
app that reads a promoted model may run as another user.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


class FileWriteError(RuntimeError):
    """A file could not be written. The message says why in words, which path, and what to
    do; nothing half-written was left behind. (A RuntimeError, so the CLI reports it as
    one ``error:`` line.)"""


def describe_os_error(exc: OSError) -> str:
    """What an OSError means for a person, e.g. "the disk is full"."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full (no space left on the device)"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (the folder is not writable for this user)"
    if exc.errno == errno.EFBIG:
        return "the file would exceed the size limit of this system"
    return exc.strerror or str(exc)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _temporary_beside(path: Path) -> tuple[Path, int]:
    """A new temporary file in ``path``'s folder (same file system: the rename is atomic),
    open for writing with the permissions of any new file."""
    temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)


def stage(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new temporary file beside ``path``, flushed to disk, and return
    its name; ``os.replace`` it over ``path`` to publish it. On any failure the temporary
    file is removed and the error raised."""
    temporary, fd = _temporary_beside(Path(path))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _remove(temporary)
        raise
    os.close(fd)
    return temporary


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """:func:`write_atomic` for data that comes in pieces (a download, an archive member):
    the block writes to a temporary file beside ``path``, published over ``path`` when the
    block ends normally and removed when it raises."""
    path = Path(path)
    temporary, fd = _temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        _remove(temporary)
        raise
    publish(temporary, path)


def publish(temporary: Path, path: Path) -> None:
    """Rename a staged file over ``path`` (atomic); the temporary file is gone either way."""
    try:
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where supported
        fd = os.open(Path(path).parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that a reader sees the old or the new file, never a
    part, and a failure (disk full, read-only) leaves the old file and no temporary one.
    Raises the OSError; callers say what it meant for them."""
    path = Path(path)
    publish(stage(path, data), path)


def discard(*temporaries: Path | None) -> None:
    """Remove staged files that will not be published."""
    for temporary in temporaries:
        if temporary is not None:
            _remove(temporary)


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by ``None``, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def strict_json(data: Any, **kwargs: Any) -> str:
    """JSON that every parser accepts: NaN and infinities (which ``json.dumps`` writes as
    bare ``NaN``/``Infinity``, invalid JSON) become ``null``."""
    return json.dumps(finite_or_none(data), allow_nan=False, **kwargs)
