"""Enhanced status codes (RFC 3463 / RFC 2034) on every SMTP reply.

aiosmtpd 1.4.6 writes many replies without them ("503 Error: need RCPT command"). The session
passes every reply through ``enhance``: a reply that already carries ``x.y.z`` is kept; others
get the code that fits their basic code. The greeting and EHLO/HELO replies are exempt
(RFC 2034 §3), as are the 334 and 354 intermediate replies.
"""

from __future__ import annotations

import re

_HAS_ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")

DEFAULT_ENHANCED = {
    "211": "2.0.0",
    "214": "2.0.0",
    "220": "2.0.0",
    "221": "2.0.0",
    "235": "2.7.0",
    "250": "2.0.0",
    "251": "2.1.5",
    "252": "2.5.0",
    "421": "4.3.2",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.3.1",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "534": "5.7.9",
    "535": "5.7.8",
    "538": "5.7.11",
    "550": "5.0.0",
    "551": "5.1.6",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.0.0",
    "555": "5.5.4",
}


def enhance(reply: str) -> str:
    """``reply`` with an enhanced status code after the basic one (each line of a multiline reply)."""
    if "\r\n" in reply:
        return "\r\n".join(enhance(line) for line in reply.split("\r\n"))
    code = reply[:3]
    if len(reply) < 3 or not code.isdigit() or code in ("334", "354") or _HAS_ENHANCED.match(reply):
        return reply
    enhanced = DEFAULT_ENHANCED.get(code) or f"{code[0]}.0.0"
    sep = reply[3:4] or " "
    text = reply[4:]
    for prefix in ("Error: ", "Error:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return f"{code}{sep}{enhanced} {text}".rstrip()
