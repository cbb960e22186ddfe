"""Turning a finished message into a queued one: DKIM-sign, spool once, commit the rows.

Shared by the queue service (``QueueService.enqueue``) and ``gk queue inject``.
File work (reading for DKIM, copying, fsync) is a blocking function meant for gevent's
threadpool; the SQLite commit happens on the caller's greenlet afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path

from gk.config import QueueConfig
from gk.mail.dkim import ensure_keys, sign_file
from gk.mail.queue.store import QueueStore

log = logging.getLogger("gk.mail.queue")

HEADER_LIMIT = 256 * 1024


@dataclass
class Prepared:
    spool: str
    size: int
    header_from: str
    subject: str
    message_id: str
    dkim_domain: str


def read_header_block(path: Path) -> bytes:
    out = bytearray()
    with open(path, "rb") as f:
        while len(out) < HEADER_LIMIT:
            line = f.readline(HEADER_LIMIT)
            if not line or line in (b"\r\n", b"\n"):
                break
            out += line
    return bytes(out)


def header_fields(header_block: bytes) -> tuple[str, str, str]:
    """(From address, Subject, Message-ID) of a header block; '' where absent or unparsable."""
    try:
        from email.policy import default as default_policy  # on first use: email.policy costs an idle box ~0.5 MB

        msg = BytesHeaderParser(policy=default_policy).parsebytes(header_block + b"\r\n")
        from_values = msg.get_all("From", [])
        addrs = [a for _, a in getaddresses([str(v) for v in from_values]) if a]
        return (addrs[0].lower() if addrs else "", str(msg.get("Subject", "")), str(msg.get("Message-ID", "")))
    except Exception:  # a garbled header block must not stop the mail
        return "", "", ""


def signing_domain(header_from: str, mail_from: str, is_local_domain) -> str:  # type: ignore[no-untyped-def]
    """The local domain to sign for: the From: domain (DMARC alignment), else the envelope's."""
    for addr in (header_from, mail_from):
        domain = addr.rpartition("@")[2].lower()
        if domain and is_local_domain(domain):
            return domain
    return ""


def prepare(store: QueueStore, cfg: QueueConfig, data_dir: Path, source: Path, dkim_domain: str) -> Prepared:
    """Blocking: sign (when ``dkim_domain``) and write the durable spool file."""
    block = read_header_block(source)
    header_from, subject, message_id = header_fields(block)
    prefix = b""
    if dkim_domain:
        try:
            keys = ensure_keys(data_dir, dkim_domain, cfg.dkim_selector, cfg.dkim_ed25519_selector)
            prefix = sign_file(source, keys)
        except (OSError, ValueError) as exc:
            log.warning("DKIM keys for %s unavailable (%s); sending unsigned", dkim_domain, exc)
    name, size = store.write_spool(prefix, source)
    return Prepared(name, size, header_from, subject, message_id, dkim_domain if prefix else "")
