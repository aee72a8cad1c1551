"""Fault injection for tests: full and read-only file systems, real where the machine
allows it, else at the system-call boundary.

- :func:`failing_writes` makes ``os.write`` (and ``os.open`` for new files) fail with a
  chosen errno for files under one folder only, after letting a few bytes through, the
  way a disk that fills up mid-write behaves. It works everywhere, as any user (as root,
  ``chmod`` does not stop writes, so a read-only folder is injected this way too).
- :func:`small_tmpfs` / :func:`read_only_bind` mount a real size-limited tmpfs or a real
  read-only bind mount (root with mount rights only; the fixtures that use them skip with
  that reason elsewhere, and the ``failing_writes`` tests cover the same code paths).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

_real_write = os.write
_real_open = os.open


def _under(fd_or_path: int | str | os.PathLike, folder: Path) -> bool:
    try:
        path = os.readlink(f"/proc/self/fd/{fd_or_path}") if isinstance(fd_or_path, int) else os.fspath(fd_or_path)
    except OSError:
        return False
    return os.path.abspath(path).startswith(str(folder.resolve()) + os.sep)


def failing_writes(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int = errno.ENOSPC,
                   let_through: int = 100, creating: bool = False) -> None:
    """From now on, writes to files under ``folder`` fail with ``code`` once ``let_through``
    bytes went to that file; with ``creating=True`` creating any file there fails at once
    (a read-only or full directory)."""
    written: dict[int, int] = {}

    def write(fd: int, data: bytes) -> int:
        if not _under(fd, folder):
            return _real_write(fd, data)
        room = let_through - written.get(fd, 0)
        if room <= 0:
            raise OSError(code, os.strerror(code))
        done = _real_write(fd, bytes(memoryview(data)[:room]))
        written[fd] = written.get(fd, 0) + done
        return done

    def open_(path: str | os.PathLike, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if creating and flags & os.O_CREAT and _under(path, folder):
            raise OSError(code, os.strerror(code), os.fspath(path))
        fd = _real_open(path, flags, mode, dir_fd=dir_fd)
        written.pop(fd, None)
        return fd

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "open", open_)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


@contextlib.contextmanager
def small_tmpfs(path: Path, size_kib: int) -> Iterator[Path]:
    """A real tmpfs of ``size_kib`` KiB at ``path``: writes beyond it fail with ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path))
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root with mount rights): {exc}")
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def read_only_bind(path: Path) -> Iterator[Path]:
    """``path`` remounted read-only in place (EROFS even for root)."""
    try:
        _mount("--bind", str(path), str(path))
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot bind-mount here (needs root with mount rights): {exc}")
    try:
        _mount("-o", "remount,bind,ro", str(path))
        yield path
    finally:
        _umount(path)
