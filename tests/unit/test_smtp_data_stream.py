"""DataReceiver: end of data, dot-unstuffing, limits and smuggling, whatever the chunking."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gk.mail.smtp.data_stream import DataReceiver


def run(data: bytes, chunks: list[int] | None = None, max_size: int = 10_000, max_line: int = 1000):
    out = io.BytesIO()
    r = DataReceiver(out, max_size=max_size, max_line=max_line)
    pos = 0
    done = False
    for n in chunks or [len(data)]:
        done = r.feed(data[pos : pos + n])
        pos += n
        if done:
            break
    if pos < len(data):  # after the end, more bytes are pipelined commands: kept as leftover
        done = r.feed(data[pos:])
    return r, out.getvalue(), done


def test_simple_message_and_leftover():
    r, out, done = run(b"Subject: x\r\n\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n")
    assert done and r.error is None
    assert out == b"Subject: x\r\n\r\nhello\r\n.dot\r\n"
    assert r.leftover == b"QUIT\r\n"
    assert r.size == len(out)


def test_empty_message():
    r, out, done = run(b".\r\n")
    assert done and out == b"" and r.error is None


@given(st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_any_chunking_gives_the_same_result(sizes):
    data = b"A: b\r\n\r\nline\r\n..x\r\n.y\r\nz\nw\r\n\r\n.\r\nNEXT"
    whole = run(data)
    split = run(data, sizes)
    assert whole[0].error is None
    assert split[1] == whole[1] == b"A: b\r\n\r\nline\r\n.x\r\ny\r\nz\nw\r\n\r\n"
    assert split[0].error is None
    assert split[2] and split[0].leftover.endswith(b"NEXT")
    smuggled = run(data.replace(b"z\nw", b"z\n.\nw"), sizes)
    assert smuggled[2] and smuggled[0].error and smuggled[0].error.startswith("550 5.6.0")


@pytest.mark.parametrize("fake", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\r\n", b"\n.\r"])
def test_smuggling_refused_and_not_an_end(fake):
    data = b"Subject: a\r\n\r\nbody" + fake + b"MAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\nevil\r\n.\r\n"
    r, out, done = run(data)
    assert done
    assert r.leftover == b""  # the fake end did not end the data
    assert r.error and r.error.startswith("550 5.6.0")
    assert out == b""  # a refused message writes nothing more


def test_bare_lf_in_text_is_not_smuggling():
    r, out, done = run(b"a\nb\r\n.x\n\r\n.\r\n")
    assert done and r.error is None
    assert out == b"a\nb\r\nx\n\r\n"


def test_size_limit_reads_to_the_end():
    r, out, done = run(b"x" * 50 + b"\r\n" + b"y" * 50 + b"\r\n.\r\nRSET\r\n", max_size=60)
    assert done and r.error and r.error.startswith("552 5.3.4")
    assert r.leftover == b"RSET\r\n"


def test_line_limit_with_no_crlf_in_a_huge_chunk():
    r, out, done = run(b"z" * 100_000 + b"\r\n.\r\n", chunks=[4096] * 30, max_line=1000, max_size=10**6)
    assert done and r.error and r.error.startswith("500 5.5.6")
    assert len(r._partial) == 0


def test_memory_is_bounded_by_a_line():
    r = DataReceiver(io.BytesIO(), max_size=10**9, max_line=1000)
    for _ in range(1000):
        r.feed(b"0123456789" * 6 + b"\r\n0123")
        assert len(r._partial) < 1000


class _LineByLine(DataReceiver):
    """The reference: the line-by-line path alone (the bulk path for clean lines switched off)."""

    def _feed_clean(self, buf: bytearray) -> bool:
        return False


_pieces = st.sampled_from(
    [b"a", b"xyz", b"0123456789", b".", b"..", b"\r\n", b"\r", b"\n", b"\r\n.\r\n", b"\r\n..", b"MAIL\r\n"]
)


@given(st.lists(_pieces, max_size=60), st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
@settings(max_examples=400, deadline=None)
def test_bulk_path_matches_line_by_line(pieces, sizes):
    data = b"".join(pieces) + b"\r\n.\r\nNEXT"
    results = []
    for cls in (DataReceiver, _LineByLine):
        out = io.BytesIO()
        r = cls(out, max_size=200, max_line=12)
        pos = 0
        for n in sizes + [len(data)]:
            if r.feed(data[pos : pos + n]) and pos + n >= len(data):
                break
            pos += n
            if pos >= len(data):
                break
        results.append((out.getvalue(), r.size, r.error, r.done, r.leftover))
    assert results[0] == results[1]


def test_a_failure_to_store_drops_the_rest_up_to_the_final_dot():
    """A full disk mid-message: nothing more is stored, the end of data is still found (the
    commands inside the body stay body), and the failure's reply comes after it."""
    out = io.BytesIO()
    r = DataReceiver(out, max_size=10_000, max_line=1000)
    assert not r.feed(b"Subject: x\r\n\r\nfirst\r\n")
    r.fail("452 4.3.1 Insufficient system storage")
    r.fail("451 4.3.0 a later failure does not replace the first")
    assert not r.feed(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nevil\r\n..\r\n")
    assert r.feed(b"more\r\n.\r\nNOOP\r\n")
    assert out.getvalue() == b"Subject: x\r\n\r\nfirst\r\n"
    assert r.error == "452 4.3.1 Insufficient system storage"
    assert r.leftover == b"NOOP\r\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 45), min_size=1, max_size=8), st.integers(3, 40))
def test_long_line_check_matches_splitting_every_line(lengths: list[int], limit: int) -> None:
    from gk.mail.smtp.data_stream import _has_long_line

    seg = b"".join(b"x" * n + b"\r\n" for n in lengths)
    assert _has_long_line(seg, limit) == (max(lengths) + 2 > limit)
