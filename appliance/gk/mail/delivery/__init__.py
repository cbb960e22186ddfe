"""Local Maildir delivery: trace headers and the per-recipient copies (local.py), written through
the mailbox's one writer path (``gk.mail.mailbox.MaildirWriter``, group-committed fsyncs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gk.mail.delivery.local import LocalDelivery, Target
from gk.mail.delivery.trace import Trace, protocol_keyword, received
from gk.mail.mailbox import get_writer

if TYPE_CHECKING:
    from gk.context import AppContext

_by_context: dict[int, LocalDelivery] = {}


def get_delivery(ctx: AppContext) -> LocalDelivery:
    """The process-wide ``LocalDelivery`` (one group committer for every feature that delivers)."""
    svc = _by_context.get(id(ctx))
    if svc is None:
        svc = _by_context[id(ctx)] = LocalDelivery(ctx.mail_root, lambda: ctx.authserv_id, get_writer(ctx))
    return svc


__all__ = ["LocalDelivery", "Target", "Trace", "get_delivery", "protocol_keyword", "received"]
