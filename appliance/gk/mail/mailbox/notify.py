"""In-process change notifications for mailboxes (new mail, flags, expunge).

Everything runs in one gevent process, so a publish is a direct call of each subscriber;
subscribers must not block (IMAP sessions set a gevent Event and return).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

Callback = Callable[[str, str, str], None]  # (address, folder, kind)

_subscribers: dict[str, list[Callback]] = defaultdict(list)


def subscribe(address: str, callback: Callback) -> None:
    _subscribers[address].append(callback)


def unsubscribe(address: str, callback: Callback) -> None:
    subs = _subscribers.get(address)
    if subs and callback in subs:
        subs.remove(callback)
        if not subs:
            del _subscribers[address]


def publish(address: str, folder: str, kind: str) -> None:
    for cb in list(_subscribers.get(address, ())):
        try:
            cb(address, folder, kind)
        except Exception:  # a broken subscriber must not break delivery
            pass
