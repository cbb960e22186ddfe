"""Local Maildir delivery with group-committed fsyncs (see local.py and committer.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gk.mail.delivery.local import LocalDelivery, Target
from gk.mail.delivery.trace import Trace, protocol_keyword, received

if TYPE_CHECKING:
    from gk.context import AppContext

_by_context: dict[int, LocalDelivery] = {}


def get_delivery(ctx: AppContext) -> LocalDelivery:
    """The process-wide ``LocalDelivery`` (one group committer for every feature that delivers)."""
    svc = _by_context.get(id(ctx))
    if svc is None:
        svc = _by_context[id(ctx)] = LocalDelivery(ctx.mail_root, ctx.hostname)
    return svc


__all__ = ["LocalDelivery", "Target", "Trace", "get_delivery", "protocol_keyword", "received"]
