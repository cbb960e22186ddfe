"""The faster MIME structure parse gives what the plain one gives: ``envelope=False`` leaves out
only the top message's ENVELOPE (an encapsulated message's stays: its BODYSTRUCTURE holds it)."""

from __future__ import annotations

import io
import json
from email.message import Message
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


# -- the fast reading of Content-Type / Content-Disposition --------------------------------------
# ``mime._fast_params`` reads the plain forms of those fields itself and leaves every other value
# to the email package (``None``). With it made to answer None for every value, the parse is the
# reference one, and each test below checks the two give the same tree, to the byte of JSON.


def _tree(data: bytes, envelope: bool) -> str:
    """The parse's JSON, or the exception it raises (the email package's RFC 2231 decoding fails
    on ``name*0*=a; name*=b``, and the fast path must leave that value to it too)."""
    try:
        return json.dumps(mime.parse_with_headers(io.BytesIO(data), envelope=envelope)[0].to_json())
    except Exception as e:
        return repr(e)


def _both(data: bytes, envelope: bool = True) -> tuple[str, str]:
    fast = _tree(data, envelope)
    with mock.patch.object(mime, "_fast_params", lambda value: None):
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


def _leaf(ctype: str, disposition: str | None, body: str) -> str:
    head = f"Content-Type: {ctype}\r\n" if ctype else ""
    if disposition is not None:
        head += f"Content-Disposition: {disposition}\r\n"
    return head + "\r\n" + body


_BOUNDARY = st.sampled_from(["b", "b2", "=_x.y", "a b", "b;c"])
_BOUNDARY_PARAM = st.sampled_from(
    ['boundary="{}"', "boundary={}", 'Boundary = "{}" ', 'boundary="{}";', "boundary*={}"]
)
_LEAF = st.builds(
    _leaf,
    st.one_of(_VALUE, st.sampled_from(["", "text/plain; charset=utf-8", "message/rfc822", "text/html"])),
    st.one_of(st.none(), _VALUE, st.just('attachment; filename="a.pdf"')),
    st.sampled_from(["", "text\r\n", "line\r\nline\r\n", "Subject: inner\r\n\r\ninner\r\n"]),
)


def _multipart(sub: str, param: str, boundary: str, children: list[str]) -> str:
    out = f"Content-Type: multipart/{sub}; {param.format(boundary)}\r\n\r\npreamble\r\n"
    for child in children:
        out += f"--{boundary}\r\n{child}\r\n"
    return out + f"--{boundary}--\r\n"


_MESSAGE = st.recursive(
    _LEAF,
    lambda inner: st.builds(
        _multipart,
        st.sampled_from(["mixed", "alternative", "digest", "RELATED"]),
        _BOUNDARY_PARAM,
        _BOUNDARY,
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(_MESSAGE, st.booleans(), st.booleans())
def test_generated_messages_parse_as_with_the_email_package(body: str, lf: bool, envelope: bool) -> None:
    data = ("From: a@b.example\r\nSubject: s\r\n" + body).encode("utf-8", "surrogateescape")
    if lf:
        data = data.replace(b"\r\n", b"\n")
    fast, reference = _both(data, envelope)
    assert fast == reference, data
