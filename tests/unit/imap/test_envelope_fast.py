"""The fast ENVELOPE reader (``mailbox.envelope.read_envelopes``) gives exactly what the general
one (``mime.parse_envelope``: Python's email parser + the RFC 5322 address tokenizer) gives: its
JSON what ``json.dumps`` makes of that ENVELOPE, its wire form the bytes ``imap.response.pack``
makes, its sent day ``sent_day`` of the Date — on hand-picked tricky header blocks and on
generated ones, one file at a time and in batches (whose messages share the pieces of repeated
values); and it really takes the fast path for the usual forms (a test of speed by construction,
not by clock)."""

from __future__ import annotations

import io
import json
import os
import tempfile
from email.utils import parsedate_tz
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gk.mail.imap.response import pack
from gk.mail.mailbox import envelope as fast
from gk.mail.mailbox import mime
from gk.mail.mailbox.store import _parse_envelopes

FIRST = fast.FIRST_READ


def _general(data: bytes) -> tuple[list[object], str | None]:
    return mime.parse_envelope(io.BytesIO(data))


def _want(data: bytes) -> tuple[str, int | None, bytes]:
    env, date = _general(data)
    return json.dumps(env), fast.sent_day(date), pack(env)


def _read_all(blocks: list[bytes]) -> list[tuple[str, int | None, bytes] | None]:
    """``read_envelopes`` of one batch of files holding ``blocks``."""
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, data in enumerate(blocks):
            path = Path(d) / str(i)
            path.write_bytes(data)
            paths.append((str(path), None))
        return fast.read_envelopes(paths)


def _same(data: bytes) -> None:
    assert _read_all([data]) == [_want(data)], data


def _same_batch(blocks: list[bytes]) -> None:
    got = _read_all(blocks)
    for data, one in zip(blocks, got, strict=True):
        assert one == _want(data), data


TRICKY = [
    # groups, empty group, route, comments, quoted pairs, domain literal, quoted local part
    b"To: team: ann@one.example, bo@two.example;, crew: cy@three.example;\r\n\r\n",
    b"To: undisclosed-recipients:;\r\n\r\n",
    b"From: <@relay.example,@b.example:kim@dest.example>\r\n\r\n",
    b"From: kim@dest.example (Kim Lee)\r\n\r\n",
    b"From: <kim (a) @ (b) dest.example>\r\n\r\n",
    b'From: "Lee, Kim \\"K\\"" <kim@dest.example>\r\n\r\n',
    b'From: "Lee, Kim" <kim@dest.example>, "" <x@y.example>, ann@b.example\r\n\r\n',
    b"From: kim@[192.0.2.1]\r\n\r\n",
    b'From: "kim lee"@dest.example\r\n\r\n',
    b"From: J. R. Smith <jr@smith.example>\r\n\r\n",
    b"From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>\r\n\r\n",
    b"To: a@b.example, , c@d.example,\r\n\r\n",
    b"To: <a@b.example>\r\nCc: Ann<a@b.example>\r\nBcc: ann @ b.example\r\n\r\n",
    b"To: not an address\r\nCc: @\r\n\r\n",
    # folding, repeated fields, case, blanks, fields after a bad line, empty values
    b"Subject: a\r\n  folded\r\n\tsubject\r\nSUBJECT: second\r\nto: A <a@b.example>\r\nTo: c@d.example\r\n\r\n",
    b"Subject:\r\nDate:   \r\nMessage-ID:<x@y>\r\n\r\n",
    b"Subject: one\r\nthis line is not a field\r\nFrom: late@x.example\r\n\r\n",
    b"Subject : spaced name\r\nFrom: a@b.example\r\n\r\n",
    b":no name\r\nSubject: after\r\n\r\n",
    b" starts folded\r\nSubject: s\r\n\r\n",
    b"From nobody Mon Jan  1 00:00:00 2024\r\nSubject: mbox\r\n\r\n",
    b"Subject: x\r\nFrom someone else\r\n\r\n",
    # bare LF, a lone CR, 8-bit bytes, control characters, quotes and backslashes in values
    b"Subject: lf only\nFrom: a@b.example\n\nbody\n",
    b"Subject: s\r\n\n\r\nFrom: after@the.end\r\n\r\n",
    b"Subject: a\rb\r\n\r\n",
    b"Subject: caf\xc3\xa9\r\nFrom: J\xc3\xb6rg <j@x.example>\r\n\r\n",
    b"Subject: bell\x07here\r\n\r\n",
    b'Subject: say "hi" \\o/\r\nIn-Reply-To: <a@b> <c@d>\r\n\r\n',
    b"Subject: " + b"x" * 1200 + b"\r\n\r\n",
    # no header block, no end of the block, only headers (no body)
    b"\r\nbody\r\n",
    b"\nbody\n",
    b"Subject: no body",
    b"",
    b"Subject: long header\r\nX-Pad: " + b"p" * 20000 + b"\r\nFrom: a@b.example\r\n\r\n",
    # dates: the usual form, without day name or seconds, with a comment, obsolete, broken
    b"Date: Tue, 14 Nov 2023 22:13:20 -0000\r\n\r\n",
    b"Date: 4 Feb 2024 01:02 +0100\r\n\r\n",
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000 (UTC)\r\n\r\n",
    b"Date: Tue, 14 Nov 23 22:13:20 GMT\r\n\r\n",
    b"Date: yesterday\r\n\r\n",
    # folding (unfolded by plain replaces, only when a line starts with a blank): by a tab only,
    # with bare LFs, CRLF and LF mixed, blank-only continuation lines, a value that is all fold
    b"Subject: tab\r\n\tonly\r\nFrom: a@b.example\r\n\r\n",
    b"Subject: lf\n fold\nTo: x@y.example,\n z@w.example\n\n",
    b"Subject: a\r\n b\nTo: c@d.example,\n\te@f.example\r\nCc: g@h.example\r\n\r\n",
    b"Subject: a\r\n \r\n\tb\r\n \r\n c\r\n\r\n",
    b"To:\r\n a@b.example\r\nSubject:\r\n\t\r\n\r\n",
    b"X-Long: folded\r\n over\r\n lines\r\nnot a field\r\nSubject: after the stop\r\n\r\n",
    # the headers stop at a line that is not a field: also one naming a wanted field
    b"Subject: first\r\nFrom : x@y.example\r\nTo: a@b.example\r\n\r\n",
    b"X-A: 1\r\n\tX-B: 2\r\nbad line\r\nMessage-ID: <late@x>\r\n\r\n",
    # strings quoted as they are unless they hold a quote or a backslash or pass 1,000 characters
    b'In-Reply-To: <"q"@x>\r\nMessage-ID: <back\\slash@x>\r\nDate: "4 Feb 2024"\r\n\r\n',
    b"Subject: " + b"y" * 1000 + b"\r\nMessage-ID: " + b"z" * 1001 + b"\r\n\r\n",
    b"Subject: " + b"w " * 500 + b"\r\n\r\n",
    # names the general address path gives with quotes and backslashes in them
    b'From: "a \\"b\\" \\\\ c" <a@b.example>\r\nTo: "x\\y" <x@y.example>\r\n\r\n',
]


@pytest.mark.parametrize("data", TRICKY)
def test_tricky_headers_match_the_general_parser(data: bytes) -> None:
    _same(data)


def test_tricky_headers_in_one_batch_match_the_general_parser() -> None:
    _same_batch(TRICKY + TRICKY[::-1])


def test_repeated_values_in_a_batch_keep_their_own_envelopes() -> None:
    """The pieces of an address value and the day of a Date are made once a batch: a value seen
    before gives the same pieces, never those of a neighbour."""
    _same_batch(
        [
            b"From: a@b.example\r\nSender: \r\nTo: a@b.example\r\nTo: c@d.example\r\n\r\n",
            b"From: c@d.example\r\nSender: \r\nTo: a@b.example\r\n\r\n",  # one To of the two above
            b"From: c@d.example\r\nSender: ,\r\nReply-To: a@b.example\r\n\r\n",
            b"Reply-To: a@b.example\r\nCc: a@b.example\r\nBcc: a@b.example\r\n\r\n",
            b"From: a@b.example, c@d.example\r\nTo: a@b.example,c@d.example\r\n\r\n",
            b"Date: 4 Feb 2024 01:02 +0100\r\n\r\n",
            b"Date: 4 Feb 2023 01:02 +0100\r\n\r\n",  # the same day of another year
            b"Date: Sun, 04 Feb 2024 23:59:59 -1200\r\n\r\n",
            b"Date: 4 Mar 2024 01:02 +0100\r\n\r\n",
            b"Date: 31 Feb 2024 01:02:03 +0100\r\n\r\n",
            b"Date: 31 Feb 2024 01:02:03 +0100\r\n\r\n",
            b"Date: 4 Feb 2024 01:02 +0100 \r\n\r\n",  # not the usual form: read by parsedate_tz
        ]
    )


@pytest.mark.parametrize("at", [*range(4090, 4102), *range(FIRST - 6, FIRST + 4)])
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_a_header_block_ending_near_a_read_boundary(at: int, eol: bytes) -> None:
    """The block's empty line across the end of the first 4 KB read, or of the fast path's
    16 KB; and a file of headers only (no empty line) of about those sizes."""
    head = b"Subject: s" + eol + b"X-Pad: "
    pad = head + b"p" * (at - len(head) - len(eol)) + eol
    assert len(pad) == at
    _same(pad + eol + b"body" + eol)
    _same(pad)
    _same(pad + b"From: a@b.example")


def test_short_reads_are_not_the_end_of_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """``read`` may return fewer bytes than asked before the end of a file."""
    real = os.read
    fake = SimpleNamespace(
        open=os.open, close=os.close, O_RDONLY=os.O_RDONLY, read=lambda fd, n: real(fd, min(n, 1000))
    )
    monkeypatch.setattr(fast, "os", fake)
    pad = b"X-Pad: " + b"p" * 5000 + b"\r\nSubject: after the pad\r\n"
    _same_batch([pad + b"\r\nbody\r\n", pad, b"Subject: short\r\n\r\n" + b"b" * 5000])


def test_no_file_is_left_open(tmp_path: Path) -> None:
    fast_one, general_one = tmp_path / "fast", tmp_path / "general"
    fast_one.write_bytes(b"Subject: s\r\n\r\n")
    general_one.write_bytes(b"Subject: caf\xc3\xa9\r\n\r\n")
    items = [(str(fast_one), None), (str(general_one), None), (str(tmp_path / "gone"), None)] * 50
    before = len(os.listdir("/proc/self/fd"))
    got = fast.read_envelopes(items)
    assert len(os.listdir("/proc/self/fd")) == before
    assert got[:3] == [_want(fast_one.read_bytes()), _want(general_one.read_bytes()), None]


@pytest.mark.parametrize("data", TRICKY)
def test_the_header_block_is_cut_where_the_general_reader_ends_it(data: bytes) -> None:
    cut = fast._cut(data[:FIRST])
    if cut is not None:
        assert cut == mime._read_headers(mime._Lines(io.BytesIO(data)), [])[0]


def test_sentdate_matches_parsedate_tz() -> None:
    for value in [
        "Tue, 14 Nov 2023 22:13:20 -0000",
        "4 Feb 2024 01:02 +0100",
        "31 Feb 2024 01:02:03 +0100",
        "Xyz, 01 Jan 1999 00:00:00 +1400",
        "Tue, 14 Nov 23 22:13:20 GMT",
        "14 Nov 2023 22:13:20 (no zone)",
        "nonsense",
        "",
    ]:
        t = parsedate_tz(value) if value else None
        want = None
        if t:
            import calendar

            want = calendar.timegm((t[0], t[1], t[2], 0, 0, 0, 0, 1, 0))
        assert fast.sent_day(value or None) == want, value


def test_the_usual_forms_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def general(*_: object) -> object:
        raise AssertionError("took the general path")

    monkeypatch.setattr(mime, "parse_envelope", general)
    monkeypatch.setattr(mime, "parse_address_list", general)
    data = (
        b"Received: from x by y; Tue, 14 Nov 2023 22:13:20 -0000\r\n"
        b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.de>\r\nTo: Bench <bench@bench.example>, ann@x.example\r\n"
        b'Cc: "Lee, Ann" <ann.lee@x.example>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= hello\r\n'
        b"Date: Tue, 14 Nov 2023 22:13:20 -0000\r\nMessage-ID: <1.2@example.com>\r\n\r\nbody\r\n"
    )
    seen: dict[str, object] = {}
    days: dict[tuple[str, ...], int | None] = {}
    got = fast._fast(fast._cut(data) or b"", seen, days)  # type: ignore[arg-type]
    assert got is not None
    env = json.loads(got[0])
    assert env[2] == [["=?utf-8?q?J=C3=B6rg?=", None, "joerg", "example.de"]]
    assert env[6] == [["Lee, Ann", None, "ann.lee", "x.example"]]
    assert env[3] == env[4] == env[2] and env[7] is None
    assert env[0] == "Tue, 14 Nov 2023 22:13:20 -0000" and got[1] == 1699920000
    # and the pieces of its address values and its day are kept for the batch's next messages
    assert set(seen) == {
        "=?utf-8?q?J=C3=B6rg?= <joerg@example.de>",
        "Bench <bench@bench.example>, ann@x.example",
        '"Lee, Ann" <ann.lee@x.example>',
    }
    assert days == {("14", "Nov", "2023"): 1699920000}


def test_parse_envelopes_renders_a_stored_envelope_and_reads_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m"
    path.write_bytes(b"Subject: s\r\nFrom: a@b.example\r\nDate: 4 Feb 2024 01:02 +0100\r\n\r\nx\r\n")
    stored = json.dumps(["d", "stored", None, None, None, None, None, None, None, None])
    got = _parse_envelopes([(str(path), None), (str(path), stored), (str(tmp_path / "gone"), None)])
    env, _ = _general(path.read_bytes())
    assert got[0] == (json.dumps(env), fast.sent_day("4 Feb 2024 01:02 +0100"), pack(env))
    assert got[1] == (stored, None, pack(json.loads(stored)))
    assert got[2] is None


_ATOM = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=6)
_PIECE = st.one_of(
    _ATOM,
    st.sampled_from(
        [" ", "  ", "\t", ",", "<", ">", "@", ".", ":", ";", '"', "\\", "(", ")", "[", "]", "=?utf-8?q?a=C3=A9?="]
    ),
    st.builds(lambda a, b: f'"{a} {b}"', _ATOM, _ATOM),
    st.builds(lambda a, b, c: f"{a} <{b}@{c}.example>", _ATOM, _ATOM, _ATOM),
    st.builds(lambda a, b: f"{a}@{b}.example", _ATOM, _ATOM),
)
_VALUE = st.lists(_PIECE, max_size=12).map("".join)
_NAME = st.sampled_from(
    ["From", "to", "CC", "Bcc", "Sender", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "X-Other"]
)
_LINE = st.one_of(
    st.builds(lambda n, v: f"{n}: {v}", _NAME, _VALUE),
    st.builds(lambda n, v: f"{n}:{v}", _NAME, _VALUE),
    st.sampled_from([" folded on", "\tfolded", "no colon here", ":empty name", "From x", "X-\u00e9: 8bit"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_LINE, max_size=8), st.sampled_from(["\r\n", "\n"]), st.booleans())
def test_generated_headers_match_the_general_parser(lines: list[str], eol: str, body: bool) -> None:
    data = eol.join(lines).encode("utf-8") + (eol + eol + "body" + eol if body else eol).encode()
    _same(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.lists(_LINE, max_size=6), st.sampled_from(["\r\n", "\n"])), min_size=2, max_size=6))
def test_generated_batches_match_the_general_parser(messages: list[tuple[list[str], str]]) -> None:
    """Messages of one batch share the pieces of their repeated values (few values: many repeats)."""
    _same_batch([(eol.join(lines) + eol + eol + "body").encode("utf-8") for lines, eol in messages])


@settings(max_examples=200, deadline=None)
@given(_VALUE)
def test_generated_address_lists_match_the_general_parser(value: str) -> None:
    normal = " ".join(value.split())
    assert fast.address_list(normal) == mime.parse_address_list(normal)


_ANY = st.one_of(st.none(), st.text(max_size=30), st.sampled_from(["x" * 1001, "a\x00b", 'q"\\', "caf\u00e9"]))
_ADDR = st.lists(st.lists(_ANY, min_size=4, max_size=4), max_size=3).map(lambda v: v or None)


@settings(max_examples=200, deadline=None)
@given(st.tuples(_ANY, _ANY, _ADDR, _ADDR, _ADDR, _ADDR, _ADDR, _ADDR, _ANY, _ANY))
def test_wire_is_what_pack_makes(env: tuple[object, ...]) -> None:
    assert fast.wire(list(env)) == pack(list(env))
