"""The MIME scanner's byte offsets agree with Python's email package on generated messages."""

from __future__ import annotations

import io
from email import message_from_bytes, policy
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from hypothesis import given, settings
from hypothesis import strategies as st

from gk.mail.imap.fetch import FetchAtt, section_range
from gk.mail.mailbox.mime import Part, parse_structure

texts = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=0, max_size=80)


def _leaf(draw_text: str, kind: int):  # type: ignore[no-untyped-def]
    if kind == 0:
        return MIMEText(draw_text or "x", "plain", "utf-8")
    if kind == 1:
        return MIMEText("<p>" + draw_text + "</p>", "html", "utf-8")
    return MIMEApplication(draw_text.encode("utf-8") + b"\x00\x01", Name="a.bin")


@st.composite
def trees(draw, depth: int = 0):  # type: ignore[no-untyped-def]
    if depth < 2 and draw(st.booleans()):
        m = MIMEMultipart(draw(st.sampled_from(["mixed", "alternative", "related"])))
        for _ in range(draw(st.integers(1, 3))):
            m.attach(draw(trees(depth + 1)))
        if draw(st.booleans()) and depth < 2:
            inner = MIMEText(draw(texts) or "inner", "plain", "utf-8")
            inner["Subject"] = "inner"
            m.attach(MIMEMessage(inner))
        return m
    return _leaf(draw(texts), draw(st.integers(0, 2)))


def _leaves(top: Part, path: list[int], out: list[tuple[list[int], Part]]) -> None:
    if top.is_multipart and top.children:
        for i, c in enumerate(top.children, 1):
            _leaves(c, [*path, i], out)
    else:
        out.append((path or [1], top))


@settings(max_examples=60, deadline=None)
@given(trees())
def test_leaf_sections_match_the_email_package(msg) -> None:  # type: ignore[no-untyped-def]
    msg["Subject"] = "generated"
    raw = msg.as_bytes(policy=policy.SMTP)
    top = parse_structure(io.BytesIO(raw))
    parsed = message_from_bytes(raw, policy=policy.SMTP)
    py_leaves = [p for p in parsed.walk() if not p.is_multipart()] if parsed.is_multipart() else [parsed]
    ours: list[tuple[list[int], Part]] = []
    _leaves(top, [], ours)
    assert len(ours) == len(py_leaves)
    for (path, part), py in zip(ours, py_leaves, strict=True):
        start, end = section_range(top, FetchAtt("SECTION", path=path if top.is_multipart else []), len(raw))  # type: ignore[misc]
        if not top.is_multipart:
            start, end = top.body_start, len(raw)
        body = raw[start:end]
        if part.maintype == "message":
            assert body.startswith(b"Content-Type: text/plain")
            continue
        expected = py.get_payload(decode=False)
        assert body.decode("utf-8").rstrip("\r\n") == expected.rstrip("\r\n"), path
        assert part.maintype == py.get_content_maintype() and part.subtype == py.get_content_subtype()


def test_rfc2231_parameters_reach_bodystructure_encoded_once_with_their_star() -> None:
    """``filename*=utf-8''%C3%A9…`` (continued, or in another charset) is sent to IMAP clients as
    ``"FILENAME*" "utf-8''%C3%A9…"``: the bytes percent-encoded once. The index used to re-encode
    the email package's Latin-1 stand-ins as UTF-8 (``%C3%83%C2%A9``), which clients showed as
    garbage, and drop the star."""
    import io

    from gk.mail.mailbox import body_structure, reading
    from gk.mail.mailbox.mime import parse_structure

    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--b\r\nContent-Type: application/pdf; name*=iso-8859-1''%E9t%E9.pdf\r\n"
        b"Content-Disposition: attachment; filename*0*=utf-8''%C3%A9t; filename*1*=%C3%A9.pdf\r\n\r\nx\r\n--b--\r\n"
    )
    top = parse_structure(io.BytesIO(raw))
    pdf = top.children[1]
    bs = body_structure(top)[1]
    assert bs[2] == ["NAME*", "iso-8859-1''%E9t%E9.pdf"]
    assert bs[8] == ["ATTACHMENT", ["FILENAME*", "utf-8''%C3%A9t%C3%A9.pdf"]]
    assert reading.part_filename(pdf) == "été.pdf"
    assert pdf.param("name") == "iso-8859-1''%E9t%E9.pdf"
