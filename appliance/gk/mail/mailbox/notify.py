"""The old string-kind notification API, kept as a thin layer over ``gk.events`` (issue 11).

``publish(address, folder, "new")`` is what code that writes files into a Maildir behind the index
(SMTP delivery, bounces) calls: it publishes ``events.MaildirChanged``. ``subscribe`` hands a
callback ``(address, folder, kind)`` every mail event of that user with its old kind (``new``,
``flags``, ``expunge``, ``folders``). New code uses ``gk.events`` directly.
"""

from __future__ import annotations

from collections.abc import Callable

from gk import events

Callback = Callable[[str, str, str], None]  # (address, folder, kind)

_KINDS: dict[type, str] = {
    events.MessagesAdded: "new",
    events.MaildirChanged: "new",
    events.FlagsChanged: "flags",
    events.Expunged: "expunge",
    events.FoldersChanged: "folders",
}
_adapters: dict[tuple[str, Callback], events.Subscriber] = {}


def subscribe(address: str, callback: Callback) -> None:
    def adapter(ev: events.Event) -> None:
        callback(ev.user, ev.folder, _KINDS.get(type(ev), "new"))

    _adapters[(address, callback)] = adapter
    events.subscribe(address, adapter)


def unsubscribe(address: str, callback: Callback) -> None:
    adapter = _adapters.pop((address, callback), None)
    if adapter is not None:
        events.unsubscribe(address, adapter)


def publish(address: str, folder: str, kind: str = "new") -> None:
    """Files landed in ``folder``'s Maildir behind the index (``kind`` is always "new" today)."""
    events.publish(events.MaildirChanged(address, folder))
