"""Delivery status notifications (RFC 3464) for the sender: failures and delays.

A DSN is ``multipart/report; report-type=delivery-status`` with a human text part, the
``message/delivery-status`` fields per recipient and the original's header block
(``text/rfc822-headers``, at most 64 KiB: the body is never copied). It is delivered straight
into the owning user's INBOX through the mailbox's one writer path (``MaildirWriter``, which
announces it) — it is never queued, so a bounce can never bounce. Mail with the null
sender ``<>`` (itself a DSN or auto-reply) never gets a DSN.
Written by hand: the stdlib ``email`` package has no builder for delivery-status parts, and
the format is a few header blocks.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from pathlib import Path

from gk.mail.mailbox import MaildirWriter

HEADER_LIMIT = 64 * 1024
_STATUS_RE = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_STAGE_RE = re.compile(r"^((?:MAIL FROM|RCPT TO|DATA): )?([245]\d\d[ -].*)$", re.S)


@dataclass
class Failure:
    rcpt: str
    reply: str  # "550 5.1.1 no such user" or a local reason
    remote_host: str = ""
    permanent: bool = True
    fixed_status: str = ""  # e.g. 5.4.7 for an expired message

    @property
    def status(self) -> str:
        if self.fixed_status:
            return self.fixed_status
        m = _STATUS_RE.search(self.reply)
        if m and (m.group(1)[0] == "5") == self.permanent:
            return m.group(1)
        return "5.0.0" if self.permanent else "4.0.0"

    @property
    def smtp_reply(self) -> str:
        """The remote server's reply without GK's stage prefix ('' when the failure was local)."""
        m = _STAGE_RE.match(self.reply)
        return m.group(2) if m else ""


def original_headers(spool: Path) -> bytes:
    out = bytearray()
    try:
        with open(spool, "rb") as f:
            while len(out) < HEADER_LIMIT:
                line = f.readline(HEADER_LIMIT)
                if not line or line in (b"\r\n", b"\n"):
                    break
                out += line.rstrip(b"\r\n") + b"\r\n"
    except OSError:
        pass
    return bytes(out[:HEADER_LIMIT])


def build(
    *,
    kind: str,  # "failed" or "delayed"
    hostname: str,
    to: str,
    failures: list[Failure],
    original: bytes,
    arrival: float,
    retry_until: float | None = None,
) -> bytes:
    import uuid  # at the first bounce, not at start

    boundary = f"=_gk_{uuid.uuid4().hex}"
    now = email.utils.formatdate(localtime=False)
    if kind == "failed":
        subject = "Undelivered Mail Returned to Sender"
        intro = (
            "Your message could not be delivered to one or more recipients. This is a permanent\r\n"
            "error; the message will not be tried again.\r\n"
        )
    else:
        subject = "Delayed Mail (still being retried)"
        until = email.utils.formatdate(retry_until, localtime=False) if retry_until else "later"
        intro = (
            "Your message has not been delivered yet to the recipients below. It will be\r\n"
            f"tried again until {until}; you do not need to send it again.\r\n"
        )
    lines = "".join(
        f"\r\n  <{f.rcpt}>: {f.reply}" + (f" (at {f.remote_host})" if f.remote_host else "") for f in failures
    )
    text = f"This is the mail system at {hostname}.\r\n\r\n{intro}{lines}\r\n"
    status = f"Reporting-MTA: dns; {hostname}\r\nArrival-Date: {email.utils.formatdate(arrival)}\r\n"
    for f in failures:
        status += f"\r\nFinal-Recipient: rfc822; {f.rcpt}\r\nAction: {kind}\r\nStatus: {f.status}\r\n"
        if f.remote_host:
            status += f"Remote-MTA: dns; {f.remote_host}\r\n"
        if f.smtp_reply:
            status += f"Diagnostic-Code: smtp; {_one_line(f.smtp_reply)}\r\n"
        else:
            status += f"Diagnostic-Code: x-gk; {_one_line(f.reply)}\r\n"
        status += f"Last-Attempt-Date: {now}\r\n"
        if kind == "delayed" and retry_until:
            status += f"Will-Retry-Until: {email.utils.formatdate(retry_until)}\r\n"
    head = (
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
        f"To: <{to}>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {now}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{hostname}>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
    )
    parts = [
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}",
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n{status}",
    ]
    body = head.encode() + "\r\n".join(parts).encode("utf-8", "replace") + b"\r\n"
    body += f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n".encode() + original
    body += f"\r\n--{boundary}--\r\n".encode()
    return body


def _one_line(s: str) -> str:
    return " ".join(s.split())[:900]


def deliver_to_user(writer: MaildirWriter, address: str, message: bytes) -> Path:
    """Durably put a DSN into ``address``'s INBOX (group-committed like any delivery) and tell
    the user's IMAP/webmail sessions; raises ``OSError`` when it could not be written."""
    return writer.deliver_bounce(address, message)
