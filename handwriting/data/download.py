"""Checksummed downloads into a cache folder, trying mirrors in turn.

Why this exists: datasets must be fetched once, verified (a truncated or
tampered file must never be parsed as data), and written atomically so an
interrupted download never leaves a half file that looks complete. When the
machine is offline the user gets a message saying exactly which files to put
where, so they can copy them over by hand.

Why not ``torchvision.datasets`` (MNIST, EMNIST): it is not a dependency here and is not
installed (it pins an exact torch build, and would be added only for these readers), and
it does not do what the paragraph above asks for: its ``download_url`` writes to the final
file name as it downloads (an interrupted download leaves a partial file, caught only by
the next md5 check), EMNIST comes from a single URL with no mirror, and with
``download=False`` it raises "Dataset not found. You can use download=True" instead of
naming the files, the cache folder and ``$HANDWRITING_DATA_DIR``. The checksums here are
the same published md5s. Not measured against torchvision for speed: parsing all four
MNIST files takes about 0.2 s (mnist.py), which no reader can improve much.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from handwriting.atomic import atomic_file

DATA_DIR_ENV = "HANDWRITING_DATA_DIR"
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """Files could not be found in the cache nor fetched from any mirror."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch, with at least one checksum so the content can be trusted.

    ``compression="Z"``: mirrors serve ``<name>.Z`` (Unix ``compress``, as old archives
    such as UCI's do). It is decompressed on download and the cache holds ``name``
    uncompressed, so ``size`` and the checksums are those of the uncompressed file.
    """

    name: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    compression: str | None = None

    def __post_init__(self) -> None:
        if not (self.md5 or self.sha256):
            raise ValueError(f"{self.name}: give an md5 or sha256 checksum")
        if self.compression not in (None, "Z"):
            raise ValueError(f"{self.name}: unsupported compression {self.compression!r}")

    @property
    def served_name(self) -> str:
        """The name on the mirrors."""
        return f"{self.name}.{self.compression}" if self.compression else self.name

    def describe(self) -> str:
        parts = [f"sha256 {self.sha256}" if self.sha256 else f"md5 {self.md5}"]
        if self.size is not None:
            parts.append(f"{self.size:,} bytes")
        if self.compression:
            parts.append(f"served as {self.served_name}: uncompress it")
        return f"{self.name} ({', '.join(parts)})"


def default_data_dir(dataset: str) -> Path:
    """``$HANDWRITING_DATA_DIR/<dataset>``, else ``~/.cache/handwriting/<dataset>``
    (``$XDG_CACHE_HOME`` is honoured)."""
    root = os.environ.get(DATA_DIR_ENV)
    if root:
        return Path(root).expanduser() / dataset
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "handwriting" / dataset


def _hashers(remote: RemoteFile) -> dict[str, Any]:
    hashers = {}
    if remote.md5:
        hashers["md5"] = hashlib.md5(usedforsecurity=False)
    if remote.sha256:
        hashers["sha256"] = hashlib.sha256()
    return hashers


def _mismatch(remote: RemoteFile, hashers: dict[str, Any], size: int) -> str | None:
    """Describe why the content does not match ``remote``, or None when it does."""
    if remote.size is not None and size != remote.size:
        return f"size {size:,} bytes, expected {remote.size:,}"
    for name, hasher in hashers.items():
        expected = getattr(remote, name)
        if hasher.hexdigest() != expected.lower():
            return f"{name} {hasher.hexdigest()}, expected {expected}"
    return None


def verify_file(path: Path, remote: RemoteFile) -> str | None:
    """Check a cached file; returns None when it is intact, else the problem."""
    hashers = _hashers(remote)
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            size += len(chunk)
            for hasher in hashers.values():
                hasher.update(chunk)
    return _mismatch(remote, hashers, size)


def _decompress(remote: RemoteFile, data: bytes) -> bytes:
    """Undo the mirror's compression (only Unix ``compress`` is needed so far)."""
    import unlzw3  # pure Python, so no system tool; imported late as only .Z files need it

    try:
        return unlzw3.unlzw(data)
    except (ValueError, IndexError) as error:
        raise DownloadError(
            f"{remote.served_name} is not valid Unix-compressed (.Z) data: {error}"
        ) from error


def _write(out: Any, data: bytes, hashers: dict[str, Any]) -> int:
    out.write(data)
    for hasher in hashers.values():
        hasher.update(data)
    return len(data)


def _fetch(url: str, remote: RemoteFile, target: Path, timeout: float) -> None:
    """Stream ``url`` into a temporary file beside ``target``, verify, then rename
    (``atomic.atomic_file``).

    A compressed file is downloaded into memory whole and its decompressed bytes are
    what gets verified and written (such files are small: stream decoders for ``.Z``
    are not worth it)."""
    hashers = _hashers(remote)
    packed = io.BytesIO()
    with atomic_file(target) as out, urllib.request.urlopen(url, timeout=timeout) as response:
        total = response.headers.get("Content-Length")
        size = 0
        with tqdm(
            total=int(total) if total else None if remote.compression else remote.size,
            unit="B",
            unit_scale=True,
            desc=remote.served_name,
            disable=None,  # only draw on a terminal
            leave=False,
        ) as bar:
            while chunk := response.read(_CHUNK):
                if remote.compression:
                    packed.write(chunk)
                else:
                    size += _write(out, chunk, hashers)
                bar.update(len(chunk))
        if remote.compression:
            size = _write(out, _decompress(remote, packed.getvalue()), hashers)
        problem = _mismatch(remote, hashers, size)
        if problem:  # raised inside the block: the file is not published
            raise DownloadError(f"checksum mismatch: {problem}")


def _join(mirror: str, name: str) -> str:
    return mirror.rstrip("/") + "/" + name


def ensure_files(
    files: Sequence[RemoteFile],
    cache_dir: str | Path,
    mirrors: Sequence[str],
    *,
    download: bool = True,
    dataset: str = "dataset",
    timeout: float = 30.0,
    explicit_dir: bool = False,
) -> dict[str, Path]:
    """Make every file present and verified in ``cache_dir``; return name -> path.

    Cached files are verified first; missing or corrupt ones are fetched from the
    first mirror that serves them intact. A mirror that cannot even be connected
    to is not retried for the remaining files (so offline runs fail fast).
    ``explicit_dir``: the caller chose ``cache_dir`` (a ``cache_dir=`` or ``--cache-dir``),
    so ``$HANDWRITING_DATA_DIR`` is not consulted and the hints must not suggest it.
    """
    cache_dir = Path(cache_dir).expanduser()
    paths: dict[str, Path] = {}
    problems: dict[str, list[str]] = {}
    dead_mirrors: set[str] = set()
    for remote in files:
        target = cache_dir / remote.name
        notes: list[str] = []
        if target.is_file():
            problem = verify_file(target, remote)
            if problem is None:
                paths[remote.name] = target
                continue
            notes.append(f"cached copy is corrupt ({problem})")
        if not download:
            problems[remote.name] = notes or ["not in the cache and download=False"]
            continue
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            how = "Pass another cache_dir" + ("" if explicit_dir else f" or set {DATA_DIR_ENV}")
            raise DownloadError(
                f"Cannot create the {dataset} cache folder {cache_dir}: {error}. {how}."
            ) from error
        for mirror in mirrors:
            url = _join(mirror, remote.served_name)
            if mirror in dead_mirrors:
                notes.append(f"{url}: skipped (mirror unreachable)")
                continue
            try:
                _fetch(url, remote, target, timeout)
            except urllib.error.HTTPError as error:
                notes.append(f"{url}: HTTP {error.code} {error.reason}")
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                reason = getattr(error, "reason", error)
                notes.append(f"{url}: {reason}")
                dead_mirrors.add(mirror)
            except (DownloadError, OSError) as error:
                notes.append(f"{url}: {error}")
            else:
                paths[remote.name] = target
                break
        if remote.name not in paths:
            problems[remote.name] = notes
    if problems:
        raise DownloadError(
            _missing_message(files, problems, cache_dir, mirrors, dataset, download, explicit_dir)
        )
    return paths


def _missing_message(
    files: Sequence[RemoteFile],
    problems: dict[str, list[str]],
    cache_dir: Path,
    mirrors: Sequence[str],
    dataset: str,
    download: bool,
    explicit_dir: bool = False,
) -> str:
    how = "could not be downloaded" if download else "are missing and download=False"
    lines = [f"{len(problems)} {dataset} file(s) {how}.", "What happened:"]
    for name, notes in problems.items():
        lines.append(f"  {name}:")
        lines.extend(f"    - {note}" for note in notes)
    lines.append(f"To fix it, place these files (byte-identical) in {cache_dir}:")
    lines.extend(f"  {remote.describe()}" for remote in files if remote.name in problems)
    lines.append("They are available from any of:")
    lines.extend(f"  {mirror}" for mirror in mirrors)
    if explicit_dir:
        # The folder was chosen by the caller: $HANDWRITING_DATA_DIR is not read at all.
        lines.append(
            f"The folder {cache_dir} was given explicitly (cache_dir / --cache-dir), so "
            f"${DATA_DIR_ENV} is not used: put the files there, or give the folder that "
            "already holds them."
        )
    else:
        lines.append(
            f"Or point data.source.cache_dir at a folder that already holds them, or set "
            f"${DATA_DIR_ENV} to a folder whose {cache_dir.name}/ subfolder holds them."
        )
    return "\n".join(lines)
