"""The one path for mail a logged-in user sends: SMTP 587/465 and the webmail both call ``submit``.

Policy, in order:

1. the envelope sender must be an address the user owns — the user's own address, a
   plus-address of it, or an alias that points at the user — else ``SubmissionError`` 553 5.7.1;
2. recipients in local domains must exist (``550 5.1.1``) and are delivered to their Maildir
   at once, durably, before ``submit`` returns, marked ``Authentication-Results: <host>;
   auth=pass smtp.auth=<user>`` (a field local delivery strips from what the message brought:
   ``gk.mail.authcheck.sender`` trusts it);
3. remote recipients go to ``ctx.services.maybe(QueueService).enqueue(...)`` (durable before it returns);
   while no queue service runs they are refused with ``550 5.3.3`` naming the reason. A queue
   refusal (``QueueError``) is permanent (``553``/``554``: a bad address will never be queued)
   unless it was caused by an ``OSError`` (disk full, I/O error: ``451 4.3.0``, try again).

``submit`` blocks the calling greenlet (file I/O goes to the threadpool); call it from gevent
code (the SMTP session calls it through its greenlet bridge).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gk import pools
from gk.accounts import User, normalize_address
from gk.mail.authcheck.results import submitted
from gk.mail.delivery import Target, Trace, get_delivery, quota, received
from gk.mail.mailbox import RawMessage
from gk.mail.queue.service import QueueError, QueueService
from gk.mail.smtp import forward

if TYPE_CHECKING:
    from gk.context import AppContext

NO_OUTBOUND = "550 5.3.3 Outbound delivery is not available yet: only local recipients can be reached"


class SubmissionError(Exception):
    """A refused submission; ``reply`` is the SMTP reply (code, enhanced code, text)."""

    def __init__(self, reply: str):
        super().__init__(reply)
        self.reply = reply

    @property
    def code(self) -> int:
        return int(self.reply[:3])


@dataclass
class SubmitResult:
    delivered: list[str] = field(default_factory=list)  # local recipients
    queued: list[str] = field(default_factory=list)  # remote recipients
    queue_id: int | None = None


def owns_address(accounts: Any, user: User, address: str) -> bool:
    """True when ``address`` is the user's own, a plus-address of it or an alias to the user."""
    if not address:
        return False
    owner = accounts.resolve_recipient(address)
    return owner is not None and owner.id == user.id


def remote_outbound_available(ctx: AppContext) -> bool:
    return ctx.services.maybe(QueueService) is not None


def classify_recipient(ctx: AppContext, address: str) -> tuple[str | None, str | None]:
    """``(local user address, None)``, ``(None, None)`` for a remote address, or ``(None, reply)``."""
    addr = normalize_address(address)
    domain = addr.rpartition("@")[2]
    if addr == "postmaster" or ctx.accounts.is_local_domain(domain):
        owner = ctx.accounts.resolve_recipient(addr)
        if owner is None:
            return None, f"550 5.1.1 <{address}>: no such user here"
        return owner.address, None
    return None, None


def queue_refusal_reply(exc: QueueError) -> str:
    """The SMTP reply for a message the queue refused: 4xx when the cause may pass, else 5xx."""
    text = " ".join(str(exc).split())[:200] or "refused by the outbound queue"
    if isinstance(exc.__cause__, OSError) or isinstance(exc.__context__, OSError):
        return f"451 4.3.0 Could not queue the message ({text}); try again later"
    if "address" in text:
        return f"553 5.1.3 Message not queued: {text}"
    return f"554 5.3.0 Message not queued: {text}"


def _write_spool(directory: Path, top: bytes, message: RawMessage | Path | bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="submit-", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(top)
        for chunk in RawMessage.of(message).chunks():
            f.write(chunk)
    return Path(name)


def _spool_for_queue(ctx: AppContext, top: bytes, message: RawMessage | Path | bytes) -> Path:
    """The message with our Received field on top, as a file for the queue (written in the
    threadpool: file creation can wait on the journal, and big messages are copied)."""
    return pools.run_io(_write_spool, ctx.data_dir / "spool" / "submit", top, message)


def submit(
    ctx: AppContext,
    user: User,
    message_path_or_bytes: RawMessage | Path | bytes,
    recipients: list[str],
    mail_from: str | None = None,
    *,
    trace: Trace | None = None,
) -> SubmitResult:
    """Deliver local recipients and queue remote ones; raises ``SubmissionError`` when refused."""
    sender = mail_from if mail_from is not None else user.address
    if not owns_address(ctx.accounts, user, sender):
        raise SubmissionError(f"553 5.7.1 <{sender}>: sender address not owned by user {user.address}")
    if not recipients:
        raise SubmissionError("554 5.5.1 No valid recipients")
    local: list[Target] = []
    remote: list[str] = []
    for rcpt in recipients:
        owner, problem = classify_recipient(ctx, rcpt)
        if problem:
            raise SubmissionError(problem)
        if owner:
            local.append(Target(rcpt, owner))
        else:
            remote.append(rcpt)
    queue = ctx.services.maybe(QueueService)
    if remote and queue is None:
        raise SubmissionError(NO_OUTBOUND)
    message = RawMessage.of(message_path_or_bytes)
    result = SubmitResult()
    t = trace or Trace(protocol="HTTPS", auth_user=user.address)
    if local:
        size = message.size() or 0
        for target in local:  # a full mailbox refuses as SMTP DATA does (gk.mail.delivery.quota)
            if quota.exceeded(ctx, target.user, size):
                raise SubmissionError(quota.FULL_DATA.format(address=target.rcpt))
        result.delivered = [target.rcpt for target in local]
        common = received(t, ctx.hostname, local[0].rcpt if len(local) == 1 else None)
        local, outside = forward.plan(ctx, local)  # the recipients' forwards, as for mail from outside
        if outside:
            kept = {target.user for target in local}
            unsent = forward.send(ctx, outside, message, common, sender)
            local += [Target(u, u) for u in unsent if u not in kept]
        if local:
            # the mark that this user sent it, for features acting on mail (gk.mail.authcheck.sender)
            mark = submitted(ctx.authserv_id, user.address)
            get_delivery(ctx).deliver(message, local, mark + common, sender)
    if remote and queue is not None:  # checked above: not None when remote
        path = _spool_for_queue(ctx, received(t, ctx.hostname), message)
        try:
            result.queue_id = queue.enqueue(sender, remote, path, user=user.address)
        except QueueError as exc:
            raise SubmissionError(queue_refusal_reply(exc)) from exc
        finally:
            path.unlink(missing_ok=True)  # the queue keeps its own copy
        result.queued = remote
    return result


__all__ = [
    "NO_OUTBOUND",
    "SubmissionError",
    "SubmitResult",
    "classify_recipient",
    "owns_address",
    "queue_refusal_reply",
    "submit",
]
