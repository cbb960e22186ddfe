"""The faster MIME structure parse gives what the plain one gives: ``envelope=False`` leaves out
only the top message's ENVELOPE (an encapsulated message's stays: its BODYSTRUCTURE holds it)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from email.message import Message
from email.policy import compat32
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gk.mail.mailbox import mime

FORWARD = (
    b"From: Ann <ann@x.example>\r\nTo: bo@y.example\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: Cy <cy@z.example>\r\nSubject: inner\r\nMessage-ID: <i@z>\r\n\r\ninner text\r\n"
    b"--b--\r\n"
)


def test_no_top_envelope_keeps_everything_else() -> None:
    full, full_headers = mime.parse_with_headers(io.BytesIO(FORWARD))
    top, headers = mime.parse_with_headers(io.BytesIO(FORWARD), envelope=False)
    assert full.envelope is not None and full.envelope[1] == "fwd"
    assert top.envelope is None
    inner = top.children[1]
    assert inner.envelope is not None and inner.envelope[1] == "inner"
    assert inner.envelope == full.children[1].envelope
    assert mime.parse_structure(io.BytesIO(FORWARD), envelope=False).to_json() == top.to_json()
    assert headers.items() == full_headers.items()
    top.envelope = full.envelope
    assert top.to_json() == full.to_json()
    assert mime.parse_structure(io.BytesIO(FORWARD)).to_json() == full.to_json()


def test_a_message_that_is_a_message_rfc822_keeps_its_inner_envelope() -> None:
    """Its top part's envelope is the encapsulated message's (BODYSTRUCTURE's), as it always was."""
    data = b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ntext\r\n"
    top = mime.parse_structure(io.BytesIO(data), envelope=False)
    assert top.envelope is not None and top.envelope[1] == "inner"
    assert top.to_json() == mime.parse_structure(io.BytesIO(data)).to_json()


# -- the fast paths against the reference -------------------------------------------------------
# ``mime._fast_params`` reads the plain forms of Content-Type / Content-Disposition itself and
# leaves every other value to the email package (``None``); ``parse_header_block`` cuts plain
# header blocks itself; ``_read_headers`` and ``_fill`` skip work. The reference is the code
# before them, copied here: the email package's reading of every field, line by line.
_FIELD_LINE = re.compile(r"[\x21-\x39\x3b-\x7e]+:")
_PLAIN_BYTES = bytes([9, 10, 13, *range(0x20, 0x7F)])


def _reference_parse_header_block(raw: bytes) -> Message:
    if raw.translate(None, _PLAIN_BYTES) or raw.count(b"\r") != raw.count(b"\r\n") or raw.startswith(b"From "):
        return mime._HEADER_PARSER.parsebytes(raw)
    msg = Message(policy=compat32)
    for line in raw.decode("ascii").splitlines():
        if _FIELD_LINE.match(line) is None:
            return mime._HEADER_PARSER.parsebytes(raw)
        name, value = line.split(":", 1)
        msg.set_raw(name, value.lstrip(" \t"))
    return msg


def _reference_read_headers(lines: mime._Lines, boundaries: list[bytes]) -> tuple[bytes, int]:
    buf: list[bytes] = []
    size = 0
    while True:
        line = lines.peek()
        if not line or mime._boundary_hit(line, boundaries):
            return b"".join(buf), lines.pos
        lines.next()
        if line in (b"\r\n", b"\n"):
            return b"".join(buf), lines.pos
        if size < mime.MAX_HEADER:
            buf.append(line)
            size += len(line)


def _reference_fill(part: mime.Part, msg: Message, default_type: str) -> None:
    get: dict[str, Any] = {}
    for k, v in msg.items():
        key = k.lower()
        if key.startswith("content-") and key not in get:
            get[key] = v
    ctype = msg.get_content_type() if get.get("content-type") else default_type
    part.maintype, _, part.subtype = ctype.partition("/")
    part.params = mime._params(msg, "content-type") if get.get("content-type") else []
    if part.maintype == "text" and not part.param("charset"):
        part.params.insert(0, ("CHARSET", "US-ASCII"))
    part.cid = mime._decode(get.get("content-id"))
    part.description = mime._decode(get.get("content-description"))
    part.encoding = (mime._decode(get.get("content-transfer-encoding")) or "7BIT").upper()
    part.md5 = mime._decode(get.get("content-md5"))
    disp = get.get("content-disposition")
    if disp:
        kind = str(disp).split(";")[0].strip()
        part.disposition = (kind.upper(), mime._params(msg, "content-disposition"))
    part.language = mime._decode(get.get("content-language"))
    part.location = mime._decode(get.get("content-location"))


@contextlib.contextmanager
def _reference() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for name, value in [
            ("_fast_params", lambda value: None),
            ("parse_header_block", _reference_parse_header_block),
            ("_read_headers", _reference_read_headers),
            ("_unfold", lambda raw: mime._FOLD.sub(b"", raw)),
            ("_fill", _reference_fill),
        ]:
            stack.enter_context(mock.patch.object(mime, name, value))
        yield


def _tree(data: bytes, envelope: bool) -> str:
    """The parse's JSON and top header fields, or the exception it raises: the fast paths must
    fail where the reference fails (the email package's RFC 2231 sort did, before ``_params``
    caught it)."""
    try:
        top, headers = mime.parse_with_headers(io.BytesIO(data), envelope=envelope)
    except Exception as e:
        return repr(e)
    return json.dumps([top.to_json(), [(k, str(v)) for k, v in headers.items()]])


def _both(data: bytes, envelope: bool = True) -> tuple[str, str]:
    fast = _tree(data, envelope)
    with _reference():
        reference = _tree(data, envelope)
    return fast, reference


def _same(data: bytes) -> None:
    fast, reference = _both(data)
    assert fast == reference, data


def _fields(value: str) -> bytes:
    """A header block with ``value`` as Content-Type and as Content-Disposition, and a body."""
    raw = value.encode("utf-8", "surrogateescape")
    return b"Content-Type: " + raw + b"\r\nContent-Disposition: " + raw + b"\r\n\r\nbody\r\n"


VALUES = [
    # the usual forms
    "text/plain; charset=utf-8",
    "text/plain; charset=UTF-8; format=flowed; delsp=yes",
    'multipart/alternative; boundary="alt"',
    'multipart/mixed;\tboundary="----=_Part_1_2.3"',
    'application/pdf; name="doc.pdf"',
    'attachment; filename="doc.pdf"',
    'attachment; filename="my doc; final.pdf"',
    "inline",
    "TEXT/HTML",
    "Text/Plain; CharSet=ISO-8859-1",
    # blanks, empty parameters, a name alone, a type alone, a malformed type
    "text/plain ;charset = utf-8 ; format= flowed ",
    "text/plain; charset=utf-8;",
    "text/plain;; charset=utf-8",
    "text/plain;  ",
    "text/plain; charset",
    "text/plain; charset=",
    "text/plain; =utf-8",
    "text",
    "a/b/c; x=1",
    " ; x=1",
    "",
    " ",
    'text/plain; x=""',
    "text/plain; a=1; A=2; a=3",
    # quotes, backslashes, angle brackets, comments
    'text/plain; x=a"b',
    'text/plain; x="a\\"b"',
    'text/plain; x="a\\\\b"',
    'text/plain; x="unterminated',
    'text/plain; x="a"b',
    'text/plain; x=<angle>; y="<angle>"',
    "text/plain; charset=utf-8 (a comment)",
    'text/"plain"; charset=utf-8',
    'text/pl"ain; charset=utf-8',
    '"text/plain; charset=utf-8"',
    'attachment; filename="a;b"; size=1',
    '"text/plain"',
    "text/plain; x=a\\b",
    # RFC 2231, encoded words, 8-bit bytes, control characters
    "application/pdf; name*=utf-8''caf%C3%A9.pdf",
    "attachment; filename*0*=utf-8''caf%C3%A9; filename*1=.pdf",
    "attachment; filename*1=b; filename*0=a",
    'attachment; filename="=?utf-8?q?caf=C3=A9?=.pdf"',
    "text/plain; charset=\udcc3\udca9",
    "t\udcc3\udca9xt/plain",
    "text/plain; x=\x0bvt",
    "text/plain;\x1cx=1",
]


@pytest.mark.parametrize("value", VALUES)
def test_fields_read_as_the_email_package_reads_them(value: str) -> None:
    _same(_fields(value))
    _same(_fields(value).replace(b"Content-Type", b"Content-type", 1))
    _same(b"Content-Type: text/plain\r\n" + _fields(value))  # the first of two is the one read


def test_the_usual_forms_take_the_fast_path() -> None:
    """The email package is not asked about the bench's messages' fields (speed by construction)."""
    data = (
        b'Subject: s\r\nContent-Type: multipart/mixed; boundary="mix"\r\n\r\n--mix\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\ntext\r\n--mix\r\n"
        b'Content-Type: application/pdf; name="doc.pdf"\r\nContent-Transfer-Encoding: base64\r\n'
        b'Content-Disposition: attachment; filename="doc.pdf"\r\n\r\nAAAA\r\n--mix--\r\n'
    )

    def reference(*_: object) -> object:
        raise AssertionError("asked the email package")

    with mock.patch.object(mime, "_params", reference), mock.patch.object(Message, "get_content_type", reference):
        top = mime.parse_structure(io.BytesIO(data))
    assert (top.maintype, top.subtype, top.params) == ("multipart", "mixed", [("BOUNDARY", "mix")])
    assert top.children[0].params == [("CHARSET", "utf-8")]
    pdf = top.children[1]
    assert (pdf.maintype, pdf.subtype, pdf.params) == ("application", "pdf", [("NAME", "doc.pdf")])
    assert pdf.disposition == ("ATTACHMENT", [("FILENAME", "doc.pdf")])


_TOKEN = st.text(alphabet="abcXYZ019-_.+!#$%&'^`{|}~", min_size=1, max_size=5)
_NAME = st.sampled_from(["charset", "CharSet", "boundary", "name", "filename", "format", "x", "a-b"])
_PIECE = st.one_of(
    st.sampled_from(
        ["text/plain", "TEXT/HTML", "multipart/mixed", "application/pdf", "attachment", "inline", "text", "a/b/c"]
    ),
    st.sampled_from(
        [";", "; ", ";;", " ", "  ", "\t", "=", '"', "\\", '\\"', "\\\\", "'", "*", "(", ")", "<", ">", "/", ",", ":"]
    ),
    st.sampled_from(["?", "@", "[", "]", "%", "\x0b", "\x1c", "\x7f", "\udcc3\udca9", "\udcff", "=?utf-8?q?a=C3=A9?="]),
    st.sampled_from(["charset", "name*0*", "name*1", "filename*", "utf-8''%C3%A9", "us-ascii'en'x", "%41"]),
    _TOKEN,
    st.builds(lambda n, v: f"; {n}={v}", _NAME, _TOKEN),
    st.builds(lambda n, v: f';{n}="{v}"', _NAME, st.text(alphabet='ab ;=\\"<>()\t\udce9', max_size=6)),
    st.builds(lambda n, i, v: f"; {n}*{i}*={v}", _NAME, st.integers(0, 2), _TOKEN),
    st.builds(lambda n, v: f"; {n}*=utf-8''{v}", _NAME, _TOKEN),
)
_VALUE = st.lists(_PIECE, max_size=10).map("".join)


@settings(max_examples=500, deadline=None)
@given(_VALUE)
def test_generated_fields_read_as_the_email_package_reads_them(value: str) -> None:
    _same(_fields(value))


def _leaf(ctype: str, other: list[str], blank: bool, body: str, cut: bool) -> str:
    """A part; without ``blank`` its header block ends at the next boundary (or at the end of
    the file), and ``cut`` takes its last CRLF (that of its last header field with no body)."""
    head = f"Content-Type: {ctype}\r\n" if ctype else ""
    head += "".join(f"{field}\r\n" for field in other)
    out = head + ("\r\n" if blank else "") + body
    return out[:-2] if cut and out.endswith("\r\n") else out


_OTHER = st.one_of(
    st.builds("Content-Disposition: {}".format, st.one_of(_VALUE, st.just('attachment; filename="a.pdf"'))),
    st.sampled_from(
        [
            "Content-Transfer-Encoding: base64",
            "content-transfer-encoding:  Quoted-Printable ",
            "Content-ID: <c@x>",
            "Content-Description: a  b\r\n c",
            "Content-MD5: e2fc714c4727ee9395f324cd2e7f331f",
            "Content-Language: en,\r\n\tde",
            "Content-Location: http://x.example/a",
            "Content-Type: text/x-second",
            "X-Other: 1",
            "Content-Disposition:",
            "Content-ID:",
        ]
    ),
)
_LEAF = st.builds(
    _leaf,
    st.one_of(_VALUE, st.sampled_from(["", "text/plain; charset=utf-8", "message/rfc822", "text/html"])),
    st.lists(_OTHER, max_size=3),
    st.booleans().map(lambda no: not no),  # mostly a blank line ends the header block
    st.sampled_from(["", "text\r\n", "line\r\nline\r\n", "Subject: inner\r\n\r\ninner\r\n", "-- \r\n"]),
    st.booleans(),
)
_BOUNDARY = st.sampled_from(["b", "b2", "=_x.y", "a b", "b;c"])
_BOUNDARY_PARAM = st.sampled_from(
    ['boundary="{}"', "boundary={}", 'Boundary = "{}" ', 'boundary="{}";', "boundary*={}", '\r\n\tboundary="{}"']
)


def _multipart(sub: str, fold: str, param: str, boundary: str, children: list[str]) -> str:
    out = f"Content-Type: multipart/{sub};{fold}{param.format(boundary)}\r\n\r\npreamble\r\n"
    for child in children:
        out += f"--{boundary}\r\n{child}\r\n"
    return out + f"--{boundary}--\r\n"


_MESSAGE = st.recursive(
    _LEAF,
    lambda inner: st.builds(
        _multipart,
        st.sampled_from(["mixed", "alternative", "digest", "RELATED"]),
        st.sampled_from([" ", "\r\n ", "\r\n\t", "\t"]),
        _BOUNDARY_PARAM,
        _BOUNDARY,
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=6,
)


_TOP = st.sampled_from(
    [
        "",
        "From x Mon Jan  1 00:00:00 2024\r\n",
        "Received: a\r\n\tb\r\n",
        "X-8bit: caf\udcc3\udca9\r\n",
        "bad line\r\n",
        "not a field: x\r\n",
        " starts folded\r\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(_TOP, _MESSAGE, st.booleans(), st.booleans())
def test_generated_messages_parse_as_with_the_email_package(top: str, body: str, lf: bool, envelope: bool) -> None:
    data = (top + "From: a@b.example\r\nSubject: s\r\n" + body).encode("utf-8", "surrogateescape")
    if lf:
        data = data.replace(b"\r\n", b"\n")
    fast, reference = _both(data, envelope)
    assert fast == reference, data


def test_rfc2231_sections_the_email_package_cannot_sort_do_not_stop_the_parse() -> None:
    """``name*0*=a; name*=b``: the email package's sort of the sections fails (None < 0); before,
    the whole parse raised, and with it the indexing of every message parsed in its batch."""
    data = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: application/pdf; name*0*=utf-8''a; name*=utf-8''%C3%A9; x=\"q;r\"\r\n"
        b"Content-Disposition: attachment; filename*=z; filename*1=y\r\n\r\nAAAA\r\n--b--\r\n"
    )
    pdf = mime.parse_structure(io.BytesIO(data)).children[0]
    assert pdf.params == [("NAME*0*", "utf-8''a"), ("NAME*", "utf-8''%C3%A9"), ("X", "q;r")]
    assert pdf.disposition == ("ATTACHMENT", [("FILENAME*", "z"), ("FILENAME*1", "y")])
    assert mime.body_structure(pdf)[2] == ["NAME*0*", "utf-8''a", "NAME*", "utf-8''%C3%A9", "X", "q;r"]
