"""UCI pen digits: the UNIPEN parser and the .Z download. No test touches the network:
downloads come from a loopback HTTP server, "offline" is a port that refuses
connections, and the core tests use small UNIPEN text written here. The real file is
used only where the shared data folder exists (it does not on CI)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from handwriting.data import pendigits
from handwriting.data.download import DownloadError, RemoteFile, verify_file
from handwriting.data.pendigits import (
    FILES,
    LICENSE_NOTE,
    TEST_FILE,
    TRAIN_FILE,
    PenDigitsFormatError,
    ensure_pendigits,
    parse_unipen,
    read_pendigits_file,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED_PENDIGITS = ROOT.parent / "shared" / "data" / "pendigits"
needs_real_file = pytest.mark.skipif(
    not (SHARED_PENDIGITS / TRAIN_FILE).is_file(),
    reason=f"{TRAIN_FILE} not available in {SHARED_PENDIGITS}",
)
OFFLINE = "http://127.0.0.1:9/"  # discard port: connection refused at once

# Three digits by two writers in the UCI layout; line numbers matter to the error tests.
SAMPLE = """\
.INCLUDE        dene.doc
.LEXICON "0" "1" "2" "3" "4" "5" "6" "7" "8" "9"
.HIERARCHY      DIGIT

.SEGMENT DIGIT    0 ? "8"
.COMMENT 8 12  224
.PEN_DOWN
 267  333
 267  336
 266  342
.PEN_UP
.DT 100

.SEGMENT DIGIT    10-11 ? "4"
.COMMENT 4 012  7
.PEN_DOWN
 100  400
 100  300
.PEN_UP
.DT 100
.PEN_DOWN
 150  450
.PEN_UP
.DT 100

.SEGMENT DIGIT    2 ? "0"
.COMMENT 0 3  1
.PEN_DOWN
 10  0
 20  500
.PEN_UP
.DT 100
"""


def _replace_line(number: int, new: str | None) -> str:
    """SAMPLE with line ``number`` (1-based) replaced, or removed when ``new`` is None."""
    lines = SAMPLE.splitlines()
    lines[number - 1 : number] = [] if new is None else [new]
    return "\n".join(lines) + "\n"


def _compress(data: bytes) -> bytes:
    """Unix-compress ``data`` with ncompress's ``compress``, as UCI's files are."""
    if shutil.which("compress") is None:
        pytest.fail("the 'compress' command is missing: apt-get install ncompress (setup.sh does)")
    done = subprocess.run(["compress", "-c"], input=data, capture_output=True, check=False)
    assert done.stdout[:2] == b"\x1f\x9d", done.stderr.decode()  # rc 2 means "no gain", still fine
    return done.stdout


def _remote_for(data: bytes) -> RemoteFile:
    return RemoteFile(
        TRAIN_FILE,
        md5=hashlib.md5(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        compression="Z",
    )


# --------------------------------------------------------------------------- parser


def test_parse_labels_writers_strokes_and_screen_coordinates():
    digits = parse_unipen(SAMPLE)
    assert [d.label for d in digits] == [8, 4, 0]
    assert [d.writer for d in digits] == ["tra-12", "tra-12", "tra-3"]  # "012" is writer 12
    assert [len(d.strokes) for d in digits] == [1, 2, 1]
    for stroke in (s for d in digits for s in d.strokes):
        assert stroke.dtype == np.float32 and stroke.ndim == 2 and stroke.shape[1] == 2
    np.testing.assert_array_equal(digits[0].strokes[0], [[267, 167], [267, 164], [266, 158]])
    np.testing.assert_array_equal(digits[1].strokes[1], [[150, 50]])  # a single-point stroke
    np.testing.assert_array_equal(digits[2].strokes[0], [[10, 500], [20, 0]])  # y flipped
    assert parse_unipen(SAMPLE, writer_tag="tes")[2].writer == "tes-3"


def test_read_file_tags_writers_by_extension(tmp_path):
    for suffix in ("tra", "tes"):
        path = tmp_path / f"pendigits-orig.{suffix}"
        path.write_text(SAMPLE)
        assert {d.writer for d in read_pendigits_file(path)} == {f"{suffix}-12", f"{suffix}-3"}


def test_windows_line_endings_and_blank_lines_inside_strokes():
    text = SAMPLE.replace(" 267  336\n", " 267  336\n\n").replace("\n", "\r\n")
    digits = parse_unipen(text)
    assert len(digits[0].strokes[0]) == 3


@pytest.mark.parametrize(
    ("line", "new", "error_line", "message"),
    [
        (12, " 1 2", 12, "point outside .PEN_DOWN"),  # replaces .DT after .PEN_UP
        (9, " 267  3x6", 9, r"expected a point 'x y'.*'267  3x6'"),
        (9, " 267", 9, "expected a point"),
        (9, " 267 336 1", 9, "expected a point"),
        (8, ".PEN_UP", 8, "empty stroke.*line 7"),  # .PEN_DOWN directly followed by .PEN_UP
        (5, '.SEGMENT DIGIT    0 ? "X"', 5, "digit label"),
        (5, '.SEGMENT DIGIT    0 ? "12"', 5, "digit label"),
        (5, ".SEGMENT DIGIT    0 ?", 5, "digit label"),
        (6, None, 5, "no '.COMMENT"),  # missing COMMENT: reported at its SEGMENT
        (6, ".COMMENT 8 twelve 224", 6, "expected '.COMMENT <label> <writer> <index>'"),
        (6, ".COMMENT 9 12 224", 6, r"label 9 differs from the \.SEGMENT's 8"),
        (11, ".DT 100", 11, r"\.DT inside the stroke opened at line 7"),
        (12, ".PEN_UP", 12, ".PEN_UP without a .PEN_DOWN"),
    ],
)
def test_malformed_input_names_source_and_line(line, new, error_line, message):
    with pytest.raises(PenDigitsFormatError, match=rf"digits\.tra: line {error_line}: .*{message}"):
        parse_unipen(_replace_line(line, new), source="digits.tra")


def test_segment_without_strokes_is_reported_at_the_segment():
    text = _replace_line(26, '.SEGMENT DIGIT 1 ? "5"\n.COMMENT 5 3 0\n.SEGMENT DIGIT 2 ? "0"')
    with pytest.raises(PenDigitsFormatError, match="line 26: digit has no strokes"):
        parse_unipen(text)
    with pytest.raises(PenDigitsFormatError, match="line 3: digit has no strokes"):
        parse_unipen('.HIERARCHY DIGIT\n\n.SEGMENT DIGIT 0 ? "1"\n.COMMENT 1 2 3\n.DT 100\n\n')


def test_unclosed_stroke_points_before_segment_and_no_segments():
    with pytest.raises(PenDigitsFormatError, match="x.tra: line 28: stroke is never closed"):
        parse_unipen(SAMPLE.rsplit(".PEN_UP", 1)[0], source="x.tra")
    with pytest.raises(PenDigitsFormatError, match="line 2: .PEN_DOWN before any .SEGMENT"):
        parse_unipen(".HIERARCHY DIGIT\n.PEN_DOWN\n 1 2\n.PEN_UP\n")
    with pytest.raises(PenDigitsFormatError, match="line 3: point outside"):
        parse_unipen(".INCLUDE x\n\n 1 2\n")
    with pytest.raises(PenDigitsFormatError, match=r"empty\.tra: line 3: no digits"):
        parse_unipen('.INCLUDE x\n.LEXICON "0"\n.HIERARCHY DIGIT\n', source="empty.tra")
    with pytest.raises(PenDigitsFormatError, match="line 1: no digits"):
        parse_unipen("")


def test_undecodable_bytes_are_reported_with_their_line(tmp_path):
    path = tmp_path / "bad.tra"
    path.write_bytes(SAMPLE.encode().replace(b" 267  336", b" 267  3\xff6"))
    with pytest.raises(PenDigitsFormatError, match=r"bad\.tra: line 9: expected a point"):
        read_pendigits_file(path)


def test_published_facts():
    assert FILES[TRAIN_FILE].size == 3_641_673 and FILES[TEST_FILE].size == 1_661_044
    assert FILES[TRAIN_FILE].md5 == "28e269fb7eaf8cb51af3f561743a0de5"
    assert FILES[TEST_FILE].md5 == "af059c4c2017f25d371999f05757d1dc"
    assert {f.served_name for f in FILES.values()} == {f"{TRAIN_FILE}.Z", f"{TEST_FILE}.Z"}
    for words in ("Pen-Based Recognition of Handwritten Digits", "Alpaydin", "Alimoglu"):
        assert words in LICENSE_NOTE
    assert (
        "1998" in LICENSE_NOTE and "CC BY 4.0" in LICENSE_NOTE and "10.24432/C5MG6K" in LICENSE_NOTE
    )
    with pytest.raises(ValueError, match="unsupported compression 'gz'"):
        RemoteFile("x", md5="0" * 32, compression="gz")


# --------------------------------------------------------------------------- download


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP mirror serving ``tmp_path/www``; yields (url, folder, requests)."""
    folder = tmp_path / "www"
    folder.mkdir()
    requests: list[str] = []

    class Recording(_Handler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Recording, directory=str(folder))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/pendigits/", folder, requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _serve(folder: Path, payload: bytes) -> None:
    (folder / "pendigits").mkdir(exist_ok=True)
    (folder / "pendigits" / f"{TRAIN_FILE}.Z").write_bytes(payload)


def test_download_decompresses_verifies_and_caches(tmp_path, server, monkeypatch):
    url, folder, requests = server
    data = SAMPLE.encode()
    monkeypatch.setitem(FILES, TRAIN_FILE, _remote_for(data))
    _serve(folder, _compress(data))
    cache = tmp_path / "cache"
    paths = ensure_pendigits(cache, mirrors=[OFFLINE, url])
    assert paths == {TRAIN_FILE: cache / TRAIN_FILE}
    assert paths[TRAIN_FILE].read_bytes() == data  # stored uncompressed
    assert [p.name for p in cache.iterdir()] == [TRAIN_FILE]  # no temp leftovers
    assert requests == [f"/pendigits/{TRAIN_FILE}.Z"]
    assert len(read_pendigits_file(paths[TRAIN_FILE])) == 3
    ensure_pendigits(cache, mirrors=[url])  # second call: the verified cache is used
    assert len(requests) == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x1f\x9d\x90" + bytes(range(256)) * 4, "not valid Unix-compressed"),
        (b"PK\x03\x04 not compressed at all", "not valid Unix-compressed"),
        (None, "checksum mismatch: size"),  # a valid .Z of other content
    ],
)
def test_download_rejects_corrupt_or_wrong_files_and_leaves_nothing(
    tmp_path, server, monkeypatch, payload, message
):
    url, folder, _ = server
    monkeypatch.setitem(FILES, TRAIN_FILE, _remote_for(SAMPLE.encode()))
    _serve(folder, payload if payload is not None else _compress(SAMPLE.encode()[:-30]))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=message) as info:
        ensure_pendigits(cache, mirrors=[url])
    assert f"{url}{TRAIN_FILE}.Z" in str(info.value) and str(cache) in str(info.value)
    assert list(cache.iterdir()) == []


def test_offline_message_names_files_urls_and_cache(tmp_path):
    cache = tmp_path / "nowhere"
    with pytest.raises(DownloadError) as info:
        ensure_pendigits(cache, mirrors=[OFFLINE])
    message = str(info.value)
    assert str(cache) in message and OFFLINE in message
    assert f"{TRAIN_FILE} (sha256 {FILES[TRAIN_FILE].sha256}, 3,641,673 bytes" in message
    assert f"served as {TRAIN_FILE}.Z" in message and f"{OFFLINE}{TRAIN_FILE}.Z" in message
    assert TEST_FILE not in message  # only the training file unless asked for
    with pytest.raises(DownloadError) as info:
        ensure_pendigits(cache, mirrors=[OFFLINE], include_test_file=True)
    assert f"{TEST_FILE} (md5 af059c4c2017f25d371999f05757d1dc" in str(info.value)
    assert "skipped (mirror unreachable)" in str(info.value)


def test_no_download_with_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDWRITING_DATA_DIR", str(tmp_path))
    with pytest.raises(DownloadError, match="download=False") as info:
        ensure_pendigits(download=False)
    assert f"place these files (byte-identical) in {tmp_path / 'pendigits'}" in str(info.value)
    assert TRAIN_FILE in str(info.value) and pendigits.MIRRORS[0] in str(info.value)
    assert not (tmp_path / "pendigits").exists()


def test_cached_good_file_is_used_without_network(tmp_path, monkeypatch):
    data = SAMPLE.encode()
    monkeypatch.setitem(FILES, TRAIN_FILE, _remote_for(data))
    (tmp_path / TRAIN_FILE).write_bytes(data)

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert ensure_pendigits(tmp_path) == {TRAIN_FILE: tmp_path / TRAIN_FILE}


# --------------------------------------------------------------------------- the real file


@needs_real_file
def test_real_training_file():
    path = SHARED_PENDIGITS / TRAIN_FILE
    assert verify_file(path, FILES[TRAIN_FILE]) is None
    digits = read_pendigits_file(path)
    assert len(digits) == 7494
    assert len({d.writer for d in digits}) == 30
    assert {d.writer for d in digits} == {f"tra-{i}" for i in range(1, 31)}
    assert np.bincount([d.label for d in digits], minlength=10).min() > 0
    assert digits[0].label == 8 and digits[0].writer == "tra-12"
    assert all(1 <= len(d.strokes) <= 4 for d in digits)
    points = np.concatenate([s for d in digits for s in d.strokes])
    assert points.min() >= 0 and points.max() <= 500  # inside the 500x500 box
    # The shared folder works as a read-only, pre-filled cache.
    assert ensure_pendigits(SHARED_PENDIGITS, download=False) == {TRAIN_FILE: path}


@needs_real_file
def test_real_file_through_a_compressed_mirror(tmp_path, server):
    url, folder, _ = server
    _serve(folder, _compress((SHARED_PENDIGITS / TRAIN_FILE).read_bytes()))
    paths = ensure_pendigits(tmp_path / "cache", mirrors=[url])  # the real published checksums
    assert verify_file(paths[TRAIN_FILE], FILES[TRAIN_FILE]) is None
