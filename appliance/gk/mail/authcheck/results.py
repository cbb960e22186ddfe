"""The Authentication-Results header field (RFC 8601) for one message: the checks of mail
received on port 25 (``authentication_results``), and for mail a user of the box submitted and
the box delivered here itself, ``auth=pass smtp.auth=<user>`` (``submitted``). Either carries
this box's authserv-id, which local delivery strips from what the message brought with it
(``gk.mail.delivery.local``): a reader trusts them (``gk.mail.authcheck.sender``)."""

from __future__ import annotations

import re

from gk.mail.authcheck.dkimverify import DKIMResult
from gk.mail.authcheck.dmarc import DMARCResult
from gk.mail.authcheck.spf import SPFResult

_SAFE = re.compile(r"[^A-Za-z0-9@._+=/-]")


def _v(text: str) -> str:
    return _SAFE.sub("", text)[:255] or "unknown"


def _reason(text: str) -> str:
    """A reason's text for a quoted string (RFC 8601 §2.2): one line, no quote, backslash or
    semicolon (a reader splitting the field at ";" must not be misled)."""
    return re.sub(r'[^ -~]|["\\;]', "", text)[:255]


def authentication_results(
    authserv_id: str, spf: SPFResult | None, dkims: list[DKIMResult], dmarc: DMARCResult | None, mail_from: str
) -> bytes:
    parts: list[str] = []
    if spf is not None:
        prop = f"smtp.mailfrom={_v(mail_from)}" if spf.identity == "mailfrom" else f"smtp.helo={_v(spf.domain)}"
        parts.append(f"spf={spf.result} {prop}")
    for d in dkims:
        if d.result == "none":
            parts.append("dkim=none")
            continue
        reason = f' reason="{_v(d.reason)}"' if d.reason else ""
        b = f" header.b={_v(d.b)}" if d.b else ""
        parts.append(f"dkim={d.result}{reason} header.d={_v(d.domain)} header.s={_v(d.selector)}{b}")
    if dmarc is not None:
        if dmarc.from_domain:
            policy = f" (p={dmarc.policy})" if dmarc.policy else ""
            reason = f' reason="{_reason(dmarc.reason)}"' if dmarc.reason else ""
            parts.append(f"dmarc={dmarc.result}{policy}{reason} header.from={_v(dmarc.from_domain)}")
        else:
            parts.append(f"dmarc={dmarc.result}")
    if not parts:
        return f"Authentication-Results: {authserv_id}; none\r\n".encode()
    return (f"Authentication-Results: {authserv_id};\r\n\t" + ";\r\n\t".join(parts) + "\r\n").encode()


def submitted(authserv_id: str, user: str) -> bytes:
    """The field of a message ``user`` submitted (SMTP AUTH or the webmail), delivered locally."""
    return f"Authentication-Results: {authserv_id}; auth=pass smtp.auth={_v(user)}\r\n".encode()
