"""Test messages shared by unit and integration tests."""

from __future__ import annotations

# a message/rfc822 inside a message/rfc822: section 1 is the middle message, 1.1 the inner one,
# 1.1.1 its text
NESTED_TWICE = (
    b"From: outer@x.example\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: middle@x.example\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: inner@x.example\r\n"
    b"Subject: deepest\r\n"
    b"\r\n"
    b"innermost text\r\n"
)

# a multipart whose boundary parameter is folded onto a second line
FOLDED = (
    b"From: a@b.example\r\n"
    b"Mime-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="two\r\n words"\r\n'
    b"\r\n"
    b"--two words\r\n"
    b"Content-Type: text/x-thing; charset=us-ascii\r\n"
    b"\r\n"
    b"hi there\r\n"
    b"\r\n"
    b"--two words--\r\n"
)
