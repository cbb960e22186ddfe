"""The faster MIME structure parse gives what the plain one gives: ``envelope=False`` leaves out
only the top message's ENVELOPE (an encapsulated message's stays: its BODYSTRUCTURE holds it)."""

from __future__ import annotations

import io

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
