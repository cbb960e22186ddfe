"""A FETCH of a top-level section (``BODY[HEADER]``, ``BODY[HEADER.FIELDS (…)]``, ``BODY[TEXT]``,
``BODY[]``, partial or not) is served without the message's MIME tree (``section_data`` with
``top=None``: the header block's end read from the file by ``header_end``) and gives the bytes
the tree gives — on hand-picked messages (bare LFs, lone CRs, no empty line, an empty line as the
first line, header lines past ``readline``'s 64 KB) and on generated ones."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gk.mail.imap import fetch
from gk.mail.imap.parser import Parser
from gk.mail.mailbox import header_end
from gk.mail.mailbox.mime import parse_structure

ATTS = [
    "BODY.PEEK[HEADER]",
    "BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID Content-Type X-Priority)]",
    "BODY.PEEK[HEADER.FIELDS.NOT (Subject Received)]",
    "BODY.PEEK[TEXT]",
    "BODY.PEEK[]",
    "BODY.PEEK[HEADER]<3.40>",
    "BODY.PEEK[HEADER.FIELDS (Subject)]<2.5>",
    "BODY.PEEK[TEXT]<1.10>",
    "RFC822.HEADER",
    "RFC822.TEXT",
]


def _atts() -> list[fetch.FetchAtt]:
    return fetch.parse_atts(Parser([("(" + " ".join(ATTS) + ")").encode()]))


def _served(data: bytes, att: fetch.FetchAtt, top: object) -> bytes:
    f = io.BytesIO(data)
    small, start, length = fetch.section_data(f, top, att, len(data))  # type: ignore[arg-type]
    return small if small is not None else data[start : start + length]


def _same(data: bytes) -> None:
    top = parse_structure(io.BytesIO(data))
    assert header_end(io.BytesIO(data)) == top.body_start
    for att in _atts():
        assert not att.needs_tree
        assert _served(data, att, None) == _served(data, att, top), (att.label, data[:200])


LONG = b"X-Long: " + b"l" * (65536 - 8)  # a line readline(65536) returns in pieces
MESSAGES = [
    b"From: a@b.example\r\nSubject: s\r\nTo: c@d.example\r\n\r\nbody\r\n",
    b"From: a@b.example\nSubject: bare LF\n\nbody\n\nmore\n",
    b"Subject: lone\rCR\r\nFrom: x@y.example\r\n\r\nbody",
    b"Subject: cr before crlf\r\r\nFrom: x@y.example\r\n\r\nbody",
    b"Subject: only headers\r\nFrom: x@y.example\r\n",
    b"Subject: no end of line",
    b"\r\nbody after an empty first line\r\n",
    b"\nbody\n",
    b"",
    b"Subject: folded\r\n  over\r\n\tlines\r\nX-Priority: 1\r\n\r\nbody\r\n",
    b"subject: lower case\r\nSUBJECT: upper\r\nX-Other: x\r\n\r\n\r\nbody after two\r\n",
    b"Subject: s\r\n\n\r\nFrom: after@the.end\r\n\r\nbody\r\n",
    b"Subject: s\n\r\n\nFrom: after@the.end\r\n\r\nbody\r\n",
    b"Subject: not a field next\r\nno colon here\r\nFrom: a@b.example\r\n\r\nbody\r\n",
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n',
    LONG + b"\n" + b"Subject: after a 64 KB line\r\n\r\nbody\r\n",
    LONG + b"\r\n" + b"Subject: after a 64 KB line\r\n\r\nbody\r\n",
    b"Subject: s\r\n" + LONG + b"\r\n\r\nbody\r\n",
    b"Subject: s\r\n" + b"X-Pad: " + b"p" * 300_000 + b"\r\nFrom: late@x.example\r\n\r\nbody\r\n",
]


@pytest.mark.parametrize("at", range(4092, 4101))
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_a_header_block_ending_near_the_first_read(at: int, eol: bytes) -> None:
    """``header_end`` reads 4 KB first: the empty line across its end, and files of headers only
    of about that size."""
    head = b"Subject: s" + eol + b"X-Pad: "
    pad = head + b"p" * (at - len(head) - len(eol)) + eol
    _same(pad + eol + b"body" + eol)
    _same(pad)
    _same(pad[:-1])


@pytest.mark.parametrize("data", MESSAGES)
def test_top_level_sections_without_the_tree_are_what_the_tree_gives(data: bytes) -> None:
    _same(data)


def test_sections_below_the_top_level_still_need_the_tree() -> None:
    atts = fetch.parse_atts(Parser([b"(BODY.PEEK[1] BODY.PEEK[1.HEADER] BODY.PEEK[2.MIME] BODY[1.TEXT])"]))
    assert all(a.needs_tree for a in atts)
    others = fetch.parse_atts(Parser([b"(UID FLAGS RFC822.SIZE ENVELOPE RFC822)"]))
    assert not any(a.needs_tree for a in others)


def _reference_fields(raw: bytes, names: list[str], negate: bool) -> bytes:
    """``_header_fields`` as it was, deciding each line afresh."""
    wanted = {n.lower() for n in names}
    out: list[bytes] = []
    keep = False
    for line in raw.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        keep = (line.split(b":", 1)[0].strip().decode("ascii", "replace").lower() in wanted) != negate
        if keep:
            out.append(line)
    return b"".join(out) + b"\r\n"


_KNOWN: dict[tuple[tuple[str, ...], bool], dict[bytes, bool]] = {}
_NAMES = st.lists(st.sampled_from(["Subject", "to", "FROM", "X-Priority", "Re\ufffd", "a b", ""]), max_size=4)
_FIELD = st.one_of(
    st.sampled_from(
        [
            b"Subject: s",
            b"subject : spaced",
            b"SUBJECT:x",
            b"To: a",
            b"to\t: b",
            b"From",
            b"x-priority: 1",
            b" cont",
            b"\tcont",
            b"Re\xff: 8 bit",
            b"a b: c",
            b": empty",
            b"To-Do: x",
            b"\x0bTo: odd blank",
        ]
    ),
    st.binary(max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(_NAMES, st.booleans(), st.lists(_FIELD, max_size=8), st.sampled_from([b"\r\n", b"\n", b"\r"]))
def test_header_fields_decided_once_per_name_are_decided_as_afresh(
    names: list[str], negate: bool, lines: list[bytes], eol: bytes
) -> None:
    """A FetchAtt keeps the decision for each raw field name across messages (``known``)."""
    known = _KNOWN.setdefault((tuple(names), negate), {})
    raw = eol.join(lines) + eol + eol + b"body"
    assert fetch._header_fields(raw, names, negate, known) == _reference_fields(raw, names, negate)


def test_header_fields_of_names_alike_are_decided_apart() -> None:
    lines = [b"X-Prio: 1", b"X-Priority: 2", b"Subject-Extra: 3", b"Subject: 4", b"To-Do: 5", b"To: 6"]
    lines += [b"Subject : 7", b"SUBJECT: 8", b"X-PRIORITY\t: 9", b"T: 10", b"Subject", b"Subjec"]
    for names in (["X-Priority"], ["Subject", "to"], ["X-Prio", "T"]):
        for negate in (False, True):
            known: dict[bytes, bool] = {}
            for block in (lines, lines[::-1], lines[1::2], lines[::2]):
                raw = b"\r\n".join(block) + b"\r\n\r\n"
                assert fetch._header_fields(raw, names, negate, known) == _reference_fields(raw, names, negate)


_LINE = st.one_of(
    st.sampled_from(
        [
            b"Subject: s",
            b"From: a@b.example",
            b"X-Priority: 3",
            b"Received: from x",
            b" folded",
            b"\tfolded",
            b"no colon",
            b"",
            b"\r",
            b"Content-Type: text/plain",
        ]
    ),
    st.binary(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=10), st.sampled_from([b"\r\n", b"\n", b"\r"]))
def test_generated_messages(lines: list[bytes], eol: bytes) -> None:
    _same(eol.join(lines))
