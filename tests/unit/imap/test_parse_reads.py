"""How the store reads a message file for a parse in a pool thread (``store._for_parse``): whole,
in one read, under ``WHOLE_READ`` (each system call of a pool thread may wait a switch interval
for the GIL behind a busy hub), else as a file; the parse is the same either way."""

from __future__ import annotations

import io
from pathlib import Path

from gk.mail.mailbox import store as store_mod


def _message(body_bytes: int) -> bytes:
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n"
    blob = line * (body_bytes // len(line) + 1)
    return (
        b'From: a@example.com\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + blob + b"--b--\r\n"
    )


def test_small_files_are_read_whole_and_big_ones_opened(tmp_path: Path) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(_message(store_mod.WHOLE_READ // 2))
    big.write_bytes(_message(store_mod.WHOLE_READ))
    with store_mod._for_parse(str(small)) as f:
        assert isinstance(f, io.BytesIO) and f.read() == small.read_bytes()
    with store_mod._for_parse(str(big)) as f:
        assert not isinstance(f, io.BytesIO) and f.read() == big.read_bytes()
    for path in (small, big):
        parsed = store_mod._parse_file(str(path))
        assert parsed is not None
        with path.open("rb") as fh:  # the line reader over the file itself, as before
            top, headers = store_mod.parse_with_headers(fh)
            text = store_mod.message_text(fh, top, headers)
        top.envelope = None
        assert parsed[1] == store_mod.json.dumps(top.to_json()) and parsed[2] == text
    assert store_mod._parse_file(str(tmp_path / "gone")) is None
    assert store_mod._body_wires([(str(tmp_path / "gone"), None)]) == [None]


def test_every_size_around_the_first_read_comes_whole(tmp_path: Path) -> None:
    """Most mail fits the first read (``FIRST_PARSE_READ``); a bigger file is read to its end
    in one more call, up to ``WHOLE_READ``: no byte lost or doubled at either edge."""
    first, whole = store_mod.FIRST_PARSE_READ, store_mod.WHOLE_READ
    for size in (0, 1, first - 1, first, first + 1, 3 * first, whole - 1):
        path = tmp_path / f"m{size}"
        data = bytes(i % 251 for i in range(size))
        path.write_bytes(data)
        with store_mod._for_parse(str(path)) as f:
            assert isinstance(f, io.BytesIO), size
            assert f.read() == data, size
    for size in (whole, whole + 1):
        path = tmp_path / f"m{size}"
        path.write_bytes(b"x" * size)
        with store_mod._for_parse(str(path)) as f:
            assert not isinstance(f, io.BytesIO) and len(f.read()) == size
