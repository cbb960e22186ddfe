"""Enhanced status codes added to aiosmtpd's plain replies."""

from __future__ import annotations

import pytest

from gk.mail.smtp.replies import enhance


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("250 OK", "250 2.0.0 OK"),
        ("503 Error: need RCPT command", "503 5.5.1 need RCPT command"),
        ('500 Error: command "FOO" not recognized', '500 5.5.2 command "FOO" not recognized'),
        (
            "552 Error: message size exceeds fixed maximum message size",
            "552 5.3.4 message size exceeds fixed maximum message size",
        ),
        ("550 5.7.1 relaying denied", "550 5.7.1 relaying denied"),
        ("221 Bye", "221 2.0.0 Bye"),
        ("334 VXNlcm5hbWU6", "334 VXNlcm5hbWU6"),
        ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
        ("599 odd", "599 5.0.0 odd"),
        ("250-first\r\n250 last", "250-2.0.0 first\r\n250 2.0.0 last"),
    ],
)
def test_enhance(reply, expected):
    assert enhance(reply) == expected
