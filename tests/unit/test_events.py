"""The change-event bus (gk/events.py): per-user delivery in publish order, subscribers for every
user, a failing subscriber logged and isolated, unsubscribe."""

from __future__ import annotations

import logging

import pytest

from gk import events


def test_events_reach_the_users_subscribers_in_order_and_no_one_else() -> None:
    bus = events.Bus()
    alice: list[events.Event] = []
    bob: list[events.Event] = []
    everyone: list[events.Event] = []
    bus.subscribe("alice@example.org", alice.append)
    bus.subscribe("bob@example.org", bob.append)
    bus.subscribe(None, everyone.append)
    sent: list[events.Event] = [
        events.MessagesAdded("alice@example.org", "INBOX", (1, 2), 3),
        events.FlagsChanged("alice@example.org", "INBOX", ((1, ("\\Seen",), 4),), 4),
        events.Expunged("alice@example.org", "INBOX", (2,), 5),
        events.FoldersChanged("bob@example.org", "Work"),
    ]
    for ev in sent:
        bus.publish(ev)
    assert alice == sent[:3]
    assert bob == sent[3:]
    assert everyone == sent
    bus.unsubscribe("alice@example.org", alice.append)
    bus.publish(events.MaildirChanged("alice@example.org", "INBOX"))
    assert len(alice) == 3 and bus.subscribers("alice@example.org") == 0 and len(everyone) == 5


def test_a_failing_subscriber_is_logged_and_the_others_still_get_the_event(caplog: pytest.LogCaptureFixture) -> None:
    bus = events.Bus()
    got: list[events.Event] = []

    def broken(ev: events.Event) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe("alice@example.org", broken)
    bus.subscribe("alice@example.org", got.append)
    ev = events.MaildirChanged("alice@example.org", "INBOX")
    with caplog.at_level(logging.ERROR, logger="gk.events"):
        bus.publish(ev)  # does not raise
    assert got == [ev]
    assert any("subscriber" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_subscriber_may_unsubscribe_while_the_event_is_delivered() -> None:
    bus = events.Bus()
    got: list[str] = []

    def once(ev: events.Event) -> None:
        got.append("once")
        bus.unsubscribe("u", once)

    bus.subscribe("u", once)
    bus.subscribe("u", lambda ev: got.append("other"))
    bus.publish(events.FoldersChanged("u", "x"))
    bus.publish(events.FoldersChanged("u", "x"))
    assert got == ["once", "other", "other"]
