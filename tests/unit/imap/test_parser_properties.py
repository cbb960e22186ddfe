"""Property tests of the IMAP command reader and parser: random input never raises anything but
ReaderError from the reader, and well-formed values round-trip. Random and mutated commands are
fed to the real session in test_session_properties.py."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gk.mail.imap import utf7
from gk.mail.imap.parser import CommandReader, Parser, ReaderError
from gk.mail.imap.protocol import Literal
from gk.mail.imap.response import string


def _reader(data: bytes, max_line: int = 1000, max_literal: int = 1000) -> CommandReader:
    return CommandReader(io.BufferedReader(io.BytesIO(data)), lambda: None, max_line, max_literal)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_reader(data: bytes) -> None:
    """The reader alone: only ReaderError escapes. What the session does with what it reads is
    tested on the real session (test_session_properties.py)."""
    reader = _reader(data + b"\r\n")
    for _ in range(5):
        try:
            parts = reader.read()
        except ReaderError:
            continue
        if parts is None:
            break


@given(st.binary(max_size=200).filter(lambda b: b"\r" not in b and b"\n" not in b and b"\0" not in b))
def test_quoted_strings_round_trip(value: bytes) -> None:
    packed = string(value)
    if packed.startswith(b"{"):
        size, _, data = packed.partition(b"}\r\n")
        parts: list = [b"x ", _lit(data), b""]  # type: ignore[type-arg]
    else:
        parts = [b"x " + packed]
    p = Parser(parts)
    p.tag()
    p.sp()
    assert p.astring() == value


def _lit(data: bytes) -> Literal:
    lit = Literal(len(data))
    lit.finish([data])
    return lit


@given(st.lists(st.tuples(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1)), min_size=1, max_size=20))
def test_sequence_sets_round_trip(ranges: list[tuple[int, int]]) -> None:
    text = ",".join(f"{a}:{b}" if a != b else str(a) for a, b in ranges).encode()
    s = Parser([text]).seq_set()
    assert list(s.ranges) == ranges


@given(st.text(max_size=40))
def test_modified_utf7_round_trips(name: str) -> None:
    name = "".join(ch for ch in name if not 0xD800 <= ord(ch) <= 0xDFFF)
    assert utf7.decode(utf7.encode(name)) == name


def test_literals_are_read_whole_and_limits_hold() -> None:
    r = _reader(b"a APPEND INBOX {5}\r\nhello\r\nb NOOP\r\n")
    parts = r.read()
    assert parts is not None and isinstance(parts[1], Literal) and parts[1].bytes() == b"hello"
    assert r.read() == [b"b NOOP"]
    r = _reader(b"a APPEND INBOX {5000}\r\nc NOOP\r\n")
    try:
        r.read()
        raise AssertionError("literal over the limit accepted")
    except ReaderError as exc:
        assert exc.tag == "a" and not exc.fatal
    assert r.read() == [b"c NOOP"]
    r = _reader(b"t1 NOOP " + b"x" * 3000 + b"\r\nt2 NOOP\r\n")
    try:
        r.read()
        raise AssertionError("over-long line accepted")
    except ReaderError as exc:
        assert exc.tag == "t1"
    assert r.read() == [b"t2 NOOP"]
