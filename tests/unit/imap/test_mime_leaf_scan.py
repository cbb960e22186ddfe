"""The leaf-body scan of the MIME parser (``_Lines.skip_leaf``): it finds the closing boundary
with ``bytes.find`` over large reads instead of one Python call per line; the part offsets and
line counts must be what a line-by-line reading gives, across read-chunk edges."""

from __future__ import annotations

import io
import random

import pytest

from gk.mail.mailbox import mime


def _reference(data: bytes, start: int, boundaries: list[bytes]) -> tuple[int, int, bytes]:
    """(end offset, lines, last line) reading line by line, as the parser did before."""
    pos, count, last = start, 0, b""
    for line in io.BytesIO(data[start:]).readlines():
        if mime._boundary_hit(line, boundaries):
            break
        pos += len(line)
        count += 1
        last = line
    return pos, count, last


def _scan(data: bytes, start: int, boundaries: list[bytes]) -> tuple[int, int, bytes]:
    lines = mime._Lines(io.BytesIO(data), start)
    lines.peek()  # the parser has usually peeked the first body line
    count, last = lines.skip_leaf(boundaries)
    assert lines.peek() == data[lines.pos :].split(b"\n", 1)[0] + (b"\n" if b"\n" in data[lines.pos :] else b"")
    return lines.pos, count, last


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_boundary_after_a_body_larger_than_one_read(eol: bytes) -> None:
    body = (b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 2 + eol) * 20_000  # ~1.5 MB, many reads
    data = b"head" + eol + eol + body + b"--not-it" + eol + b"x" + eol + b"--b1" + eol + b"rest" + eol
    start = data.index(eol + eol) + 2 * len(eol)
    assert _scan(data, start, [b"b1"]) == _reference(data, start, [b"b1"])


def test_a_boundary_straddling_every_read_edge_is_found() -> None:
    for pad in range(0, 40):
        line = b"a" * 62 + b"\r\n"
        size = mime._LEAF_READ - 5 - pad
        filler = line * (size // len(line)) + b"b" * (size % len(line)) + b"\r\n"
        data = filler + b"--outer--  \r\nafter\r\n"
        got = _scan(data, 0, [b"outer", b"inner"])
        assert got == _reference(data, 0, [b"outer", b"inner"])
        assert got[0] == len(filler)


def test_end_of_file_without_newline_and_without_boundaries() -> None:
    for data in (b"one\r\ntwo", b"", b"\r\n", b"only", b"--b1", b"x\n--b1"):
        assert _scan(data, 0, [b"b1"]) == _reference(data, 0, [b"b1"])
        assert _scan(data, 0, []) == _reference(data, 0, [])


def test_a_line_longer_than_64_kib_counts_once_and_is_not_kept() -> None:
    long = b"z" * (3 * mime._LEAF_READ) + b"\r\n"
    data = b"a\r\n" + long + b"b\r\n" + long + b"--b1\r\n"
    end, count, last = _scan(data, 0, [b"b1"])
    assert (end, count) == (len(data) - len(b"--b1\r\n"), 4)
    assert last == b"z\r\n"  # its last bytes only: enough for the CRLF before the boundary


def test_random_bodies_match_line_by_line_reading() -> None:
    rnd = random.Random(11)
    pieces = [b"--b1\r\n", b"--b1--\r\n", b"--b2\n", b"--b2--", b"-- b1\r\n", b"\r\n", b"\n", b"text\r\n", b"--"]
    for _ in range(3000):
        data = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 25)))
        bounds = rnd.choice([[], [b"b1"], [b"b1", b"b2"]])
        assert _scan(data, 0, bounds) == _reference(data, 0, bounds), data
