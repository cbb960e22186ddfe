"""Forwards: mail to a user who set ``forward_to`` (admin's Users page) also goes there, or only
there when the user keeps no copy.

A forward to a local address is one more local copy (one hop: a forward is not followed again).
A forward outside goes through the outbound queue with the envelope sender rewritten by SRS
(``gk.mail.smtp.srs``: ``SRS0=HHHH=TT=domain=local@<the forwarding user's domain>``), so SPF
checks this box's domain — which sends it — instead of the original sender's, and a bounce comes
back here: ``bounce_address`` checks it (a forged or expired one is refused with 550 at RCPT) and
``send_back`` queues the bounce to the original sender. A sender in one of the box's own domains
is kept as it is (SPF already passes, and its bounces come straight home). A bounce (empty
sender) is forwarded with an empty sender, so it is never bounced again. The queue DKIM-signs it
for the user's domain (``spooling.signing_domain``). Without the queue running, the forward is
logged and the local copy kept, whatever the user chose: mail is never dropped.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from gk import pools
from gk.mail.delivery import Target
from gk.mail.mailbox import RawMessage
from gk.mail.smtp import srs

if TYPE_CHECKING:
    from gk.accounts import User
    from gk.context import AppContext

log = logging.getLogger("gk.smtp")


def plan(
    ctx: AppContext, targets: list[Target], known: Mapping[str, User] | None = None
) -> tuple[list[Target], dict[str, list[str]]]:
    """(the local copies to write, {forwarding user: outside addresses}) for ``targets``.
    ``known``: users already read (SMTP's RCPT), by address; the others are read here."""
    from gk.mail.queue.service import QueueService

    queue_up = ctx.services.maybe(QueueService) is not None
    local: list[Target] = []
    outside: dict[str, list[str]] = {}
    users = {t.user for t in targets}
    for t in targets:
        user = known.get(t.user) if known else None
        if user is None:
            user = ctx.accounts.get_user(t.user)
        if user is None or not user.forward_to:
            local.append(t)
            continue
        owner = ctx.accounts.resolve_recipient(user.forward_to)
        if owner is not None:
            if owner.address not in users:
                local.append(Target(user.forward_to, owner.address, t.folder))
                users.add(owner.address)
        elif queue_up:
            outside.setdefault(user.address, []).append(user.forward_to)
        else:
            log.warning(
                "forward of %s to %s not sent: the outbound queue is not running", user.address, user.forward_to
            )
            local.append(t)
            continue
        if user.forward_keep:
            local.append(t)
    return local, outside


def _spool(directory: Path, top: bytes, message: RawMessage) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="forward-", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(top)
        for chunk in message.chunks():
            f.write(chunk)
    return Path(name)


def send(
    ctx: AppContext, forwards: dict[str, list[str]], message: RawMessage | Path | bytes, top: bytes, mail_from: str
) -> set[str]:
    """Queue each user's outside forwards, the envelope sender rewritten (module docstring); the
    users whose forward could not be queued (their copy must then be kept here)."""
    from gk.mail.queue.service import QueueError, QueueService

    queue = ctx.services.maybe(QueueService)
    if not forwards:
        return set()
    if queue is None:
        return set(forwards)
    failed: set[str] = set()
    path = pools.run_io(_spool, ctx.data_dir / "spool" / "submit", top, RawMessage.of(message))
    try:
        for user, recipients in forwards.items():
            sender = envelope_sender(ctx, mail_from, user)
            try:
                msg_id = queue.enqueue(sender, recipients, path, user=user)
            except QueueError as exc:
                log.warning("forward of %s to %s not queued: %s", user, ", ".join(recipients), exc)
                failed.add(user)
            else:
                log.info("forwarded mail of %s to %s (queue id %d)", user, ", ".join(recipients), msg_id)
    finally:
        path.unlink(missing_ok=True)  # the queue keeps its own copy
    return failed


def envelope_sender(ctx: AppContext, mail_from: str, user: str) -> str:
    """The envelope sender of ``user``'s forward of mail from ``mail_from`` (module docstring)."""
    if not mail_from:
        return ""
    domain = mail_from.rpartition("@")[2]
    if ctx.accounts.is_local_domain(domain):
        return mail_from
    try:
        return srs.forward(srs.secret(ctx.data_dir), mail_from, user.rpartition("@")[2])
    except srs.SRSError:  # not an address (a bare "postmaster"): the user's own, as before SRS
        return user


def bounce_address(ctx: AppContext, address: str) -> str:
    """Where a bounce to the SRS address ``address`` (in a local domain) goes back to;
    ``srs.SRSError`` when it is not one this box made (forged, malformed) or it expired."""
    return srs.reverse(srs.secret(ctx.data_dir), address)


def send_back(ctx: AppContext, addresses: list[str], message: RawMessage | Path | bytes, top: bytes) -> set[str]:
    """Queue a bounce received for the SRS ``addresses`` to the original senders, with the null
    sender (a bounce is never bounced); the addresses whose bounce could not be queued."""
    from gk.mail.queue.service import QueueError, QueueService

    queue = ctx.services.maybe(QueueService)
    if queue is None:
        return set(addresses)
    failed: set[str] = set()
    path = pools.run_io(_spool, ctx.data_dir / "spool" / "submit", top, RawMessage.of(message))
    try:
        for address in addresses:
            try:
                original = bounce_address(ctx, address)
                msg_id = queue.enqueue("", [original], path, user=f"postmaster@{address.rpartition('@')[2]}")
            except (QueueError, srs.SRSError) as exc:
                log.warning("bounce to %s not sent back: %s", address, exc)
                failed.add(address)
            else:
                log.info("bounce to %s sent back to %s (queue id %d)", address, original, msg_id)
    finally:
        path.unlink(missing_ok=True)
    return failed
