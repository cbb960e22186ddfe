"""The process's one change-event bus: typed events, published after commit, delivered in order to
the subscribers of the user they concern.

Everything runs in one gevent process, so ``publish`` calls each subscriber directly, in the
publisher's greenlet, in subscription order. A subscriber must not block (an IMAP session queues
the event and sets a gevent ``Event``); one that raises is logged and skipped, never breaks the
publisher (a delivery that was committed stays committed) nor the other subscribers.

Publishers publish *after* their change is durable (the index transaction committed, the file
renamed and its directory fsynced) and without yielding to the hub in between, so the order in
which a user's subscribers see events is the order of the commits (the mailbox holds the user's
lock across each change).

Mail events, after Mox's ``store.Change*``:

- ``MessagesAdded(user, folder, uids, modseq)``: messages indexed in ``folder`` (delivered and
  synced, appended, copied or moved in), ascending UIDs (their flags: ``UserMailbox.infos``);
- ``FlagsChanged(user, folder, changes, modseq)``: ``(uid, flags, modseq)`` per changed message;
- ``Expunged(user, folder, uids, modseq)``: messages gone from ``folder`` (expunge, move out,
  removed behind our back);
- ``FoldersChanged(user, folder)``: a folder created, deleted or renamed (``folder`` the old name);
- ``MaildirChanged(user, folder)``: files landed in the Maildir behind the index (SMTP delivery,
  a bounce): no UIDs yet. A subscriber that shows the folder syncs it; the sync publishes
  ``MessagesAdded``.

``modseq`` is the folder's HIGHESTMODSEQ after the change: a subscriber that applied every event
of a folder has seen that value (IMAP checks it and resynchronizes in full when it differs).
Chat, DAV and assistant events are added here as their features land.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("gk.events")


@dataclass(frozen=True, slots=True)
class MessagesAdded:
    user: str
    folder: str
    uids: tuple[int, ...]  # ascending
    modseq: int
    # those of ``uids`` a folder's first indexing found already in cur/ (a Maildir copied in, the
    # history of a box restored): not new mail, so nothing acts on them as such (the DAV iTIP
    # watcher: applied again, years-old REPLYs would overwrite today's answers)
    imported: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    user: str
    folder: str
    changes: tuple[tuple[int, tuple[str, ...], int], ...]  # (uid, flags, modseq)
    modseq: int


@dataclass(frozen=True, slots=True)
class Expunged:
    user: str
    folder: str
    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True, slots=True)
class FoldersChanged:
    user: str
    folder: str


@dataclass(frozen=True, slots=True)
class MaildirChanged:
    user: str
    folder: str
    paths: tuple[str, ...] = ()  # the files just delivered into the folder's new/ (when known)


MailEvent = MessagesAdded | FlagsChanged | Expunged | FoldersChanged | MaildirChanged
Event = MailEvent
Subscriber = Callable[[Event], None]


class Bus:
    """Subscribers per user (``None``: every user's events)."""

    def __init__(self) -> None:
        self._subscribers: dict[str | None, list[Subscriber]] = {}

    def subscribe(self, user: str | None, callback: Subscriber) -> None:
        self._subscribers.setdefault(user, []).append(callback)

    def unsubscribe(self, user: str | None, callback: Subscriber) -> None:
        subs = self._subscribers.get(user)
        if subs and callback in subs:
            subs.remove(callback)
            if not subs:
                del self._subscribers[user]

    def subscribers(self, user: str | None) -> int:
        return len(self._subscribers.get(user, ()))

    def publish(self, event: Event) -> None:
        for cb in [*self._subscribers.get(event.user, ()), *self._subscribers.get(None, ())]:
            try:
                cb(event)
            except Exception:  # a broken subscriber must not break the publisher or the others
                log.exception("event subscriber %r failed on %s", cb, type(event).__name__)


bus = Bus()  # the process's bus
subscribe = bus.subscribe
unsubscribe = bus.unsubscribe
publish = bus.publish
