"""Property tests of the IMAP command reader and parser: random and mutated input never raises
anything but BadCommand/ReaderError, and well-formed values round-trip."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gk.mail.imap import fetch, utf7
from gk.mail.imap.parser import CommandReader, Parser, ReaderError
from gk.mail.imap.protocol import BadCommand, Literal
from gk.mail.imap.response import string
from gk.mail.imap.search import SearchParser

SEEDS = [
    b'a1 LOGIN alice "pass word"',
    b"a2 FETCH 1:*,3 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (Subject From)]<0.100> UID)",
    b"a3 UID SEARCH CHARSET UTF-8 OR (FROM x SUBJECT {3}",
    b'a4 APPEND INBOX (\\Seen $Label) "01-Feb-2026 10:00:00 +0100" {5+}',
    b"a5 STORE 1:3 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Deleted)",
    b'a6 LIST (SUBSCRIBED) "" ("INBOX" "%") RETURN (CHILDREN)',
    b"a7 SEARCH NOT OR SEEN 1:4 SINCE 1-Jan-2026 LARGER 100 HEADER X-Y z UID 5:*",
]


def _reader(data: bytes, max_line: int = 1000, max_literal: int = 1000) -> CommandReader:
    return CommandReader(io.BufferedReader(io.BytesIO(data)), lambda: None, max_line, max_literal)


def _drive(parts: list) -> None:  # type: ignore[type-arg]
    """Parse a command the way the session does; only BadCommand may escape."""
    p = Parser(parts)
    try:
        p.tag()
        p.sp()
        word = p.atom().upper()
        if word == "FETCH":
            p.sp()
            p.seq_set()
            p.sp()
            fetch.parse_atts(p)
        elif word == "SEARCH":
            p.sp()
            SearchParser(p, lambda s: s.resolve(10), lambda s: s.resolve(10)).program()
        elif word == "APPEND":
            p.sp()
            p.mailbox()
            p.sp()
            if p.peek() == ord("("):
                p.flag_list()
                p.sp()
            if p.peek() == ord('"'):
                p.date_time()
                p.sp()
            p.literal()
        else:
            while not p.at_end():
                if p.at_literal():
                    p.literal()
                elif p.peek() == ord("("):
                    p.flag_list()
                else:
                    p.astring()
                p.try_(b" ")
        p.end()
    except BadCommand:
        pass
    except Exception as exc:  # pragma: no cover - the property under test
        if type(exc).__name__ == "NoCommand":
            return
        raise


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_reader_or_parser(data: bytes) -> None:
    reader = _reader(data + b"\r\n")
    for _ in range(5):
        try:
            parts = reader.read()
        except ReaderError:
            continue
        if parts is None:
            break
        _drive(parts)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 200), st.binary(max_size=4)), max_size=6))
def test_mutated_commands_never_crash(seed: bytes, edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(seed)
    for pos, ins in edits:
        pos = pos % (len(data) + 1)
        if ins:
            data[pos:pos] = ins
        elif data:
            del data[pos % len(data)]
    reader = _reader(bytes(data) + b"\r\nabc\r\n")
    try:
        parts = reader.read()
    except ReaderError:
        return
    if parts is not None:
        _drive(parts)


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
