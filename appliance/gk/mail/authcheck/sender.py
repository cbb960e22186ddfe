"""Who really sent a delivered message, as far as this box can tell: ``verified_sender``.

Features that act on mail by themselves (the DAV iTIP watcher: an invitation put in a calendar's
scheduling inbox, an attendee's answer written into an organizer's event; the webmail's
invitation actions) must not take the ``From`` field's word for it. They read the box's own
``Authentication-Results`` fields instead (those carrying its authserv-id: local delivery strips
any the message brought, RFC 8601 §5, so a remote sender cannot forge them). The authserv-id
is ``AppContext.authserv_id``: the host name of the box's first start, kept when the owner
renames the box (``settings.Settings.authserv_id``), so older mail stays verified:

- ``auth=pass smtp.auth=<user>`` (mail a user of the box submitted, ``results.submitted``): the
  From address must be one that user owns (their address, a plus-address, an alias to them);
- else a From in one of the box's own domains is never verified: such mail from port 25 is a
  forgery the SMTP service refused or filed as Junk (``dmarc.own_domain``);
- ``dmarc=pass header.from=<the From domain>``;
- ``dmarc=none`` (the domain publishes no DMARC record): SPF or DKIM that passed for a domain
  aligned with the From domain (relaxed, RFC 7489 §3.1), the test DMARC would make. Many small
  domains publish no DMARC record but nearly every sender passes SPF or DKIM for its own domain;
  taking the bare ``From`` (what Radicale and sabre/dav do) would let anyone change an
  attendee's answer or place an invitation by naming its organizer.

Cost: the header section parsed once (the email package), no DNS.
"""

from __future__ import annotations

import email.parser
import email.utils
import re
from typing import Any

_COMMENT = re.compile(r"\([^()]*\)")
_QUOTED = re.compile(r'"[^"]*"')


def _head(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end >= 0:
            return raw[: end + len(sep)]
    return raw


def our_results(fields: list[str], authserv_id: str) -> list[dict[str, str]]:
    """The resinfos of the ``Authentication-Results`` values carrying ``authserv_id``, each as
    ``{"method": result, "ptype.property": value, ...}`` (comments and quoted reasons dropped)."""
    ours = authserv_id.lower()
    out: list[dict[str, str]] = []
    for value in fields:
        text = " ".join(str(value).split())
        text = _QUOTED.sub('""', _COMMENT.sub(" ", _COMMENT.sub(" ", text)))
        ident, _, rest = text.partition(";")
        words = ident.split()
        if not words or words[0].lower() != ours:
            continue
        for resinfo in rest.split(";"):
            tokens = resinfo.split()
            if not tokens or "=" not in tokens[0]:
                continue
            method, _, result = tokens[0].partition("=")
            info = {method.lower(): result.lower()}
            for token in tokens[1:]:
                key, eq, val = token.partition("=")
                if eq and "." in key:
                    info[key.lower()] = val.strip('"').lower()
            out.append(info)
    return out


def _find(results: list[dict[str, str]], method: str, result: str) -> list[dict[str, str]]:
    return [r for r in results if r.get(method) == result]


def verified_sender(raw: bytes, authserv_id: str, accounts: Any) -> str:
    """The message's From address (lower-case) when this box vouches for it (module docstring),
    else ""."""
    from gk.mail.authcheck.dmarc import aligned

    msg = email.parser.BytesHeaderParser().parsebytes(_head(raw))  # compat32, its default
    froms = msg.get_all("From") or []
    addresses = [a for _, a in email.utils.getaddresses([str(v) for v in froms]) if a]
    if len(froms) != 1 or len(addresses) != 1 or "@" not in addresses[0]:
        return ""
    sender = addresses[0].strip().lower()
    domain = sender.rpartition("@")[2].rstrip(".")
    results = our_results([str(v) for v in msg.get_all("Authentication-Results") or []], authserv_id)
    for r in _find(results, "auth", "pass"):
        user = accounts.get_user(r.get("smtp.auth", ""))
        owner = accounts.resolve_recipient(sender)
        if user is not None and owner is not None and owner.id == user.id:
            return sender
    if not domain or accounts.is_local_domain(domain):
        return ""  # the box's own domain: only its users send from it, and they authenticate
    if any(r.get("header.from", "").rstrip(".") == domain for r in _find(results, "dmarc", "pass")):
        return sender
    if not any(r.get("header.from", "").rstrip(".") == domain for r in _find(results, "dmarc", "none")):
        return ""  # dmarc=fail, an error, several From domains, or DMARC not checked
    for r in _find(results, "spf", "pass"):
        mailfrom = r.get("smtp.mailfrom", "").rpartition("@")[2] or r.get("smtp.helo", "")
        if mailfrom and aligned(mailfrom, domain, "r"):
            return sender
    for r in _find(results, "dkim", "pass"):
        if r.get("header.d") and aligned(r["header.d"], domain, "r"):
            return sender
    return ""


__all__ = ["our_results", "verified_sender"]
