"""Pending actions (gk.mcp.approvals) on a real SQLite file: queued durably, found only by their
owner, executed once, rejected or expired for good."""

from __future__ import annotations

import time

import gevent
import pytest

from gk.mcp import approvals
from gk.mcp.approvals import ActionError, ActionFailed, ApprovalStore, PendingAction


@pytest.fixture
def store(tmp_path):
    yield ApprovalStore(tmp_path, hours=1)
    approvals.close_all()


def test_queue_is_durable_and_found_only_by_its_owner(store, tmp_path):
    a = store.queue("alice@x.example", "mail_send", "send mail", {"rcpts": ["b@y.example"]}, b"Subject: hi\r\n\r\nhi")
    assert a.is_pending and len(a.id) >= 20 and a.expires - a.created == 3600
    approvals.close_all()  # a new connection sees it: it was committed before queue() returned
    again = ApprovalStore(tmp_path)
    found = again.of_owner("alice@x.example", a.id)
    assert found.payload == {"rcpts": ["b@y.example"]} and found.message == b"Subject: hi\r\n\r\nhi"
    for owner, action_id in (("bob@x.example", a.id), ("alice@x.example", "nope"), ("alice@x.example", "x" * 500)):
        with pytest.raises(ActionError) as info:
            again.of_owner(owner, action_id)
        assert info.value.code == "not_found"
    assert again.count_pending("alice@x.example") == 1 and again.count_pending("bob@x.example") == 0


def test_approve_runs_once_even_when_clicked_concurrently(store):
    a = store.queue("alice@x.example", "chat_post", "post", {"to": "bob", "text": "hi"})
    runs: list[PendingAction] = []

    def executor(owner: str, action: PendingAction) -> str:
        runs.append(action)
        gevent.sleep(0.01)
        return "posted"

    def click() -> str:
        try:
            return approvals.approve(store, {"chat_post": executor}, "alice@x.example", a.id).state
        except ActionError as exc:
            return exc.code

    outcomes = sorted(g.get() for g in [gevent.spawn(click) for _ in range(5)])
    assert outcomes == ["done"] + ["not_pending"] * 4 and len(runs) == 1
    done = store.get(a.id)
    assert done is not None and done.decided_by == "alice@x.example" and done.result == "posted"
    with pytest.raises(ActionError):
        store.reject("alice@x.example", a.id, "alice@x.example")
    with pytest.raises(ActionError) as info:
        approvals.approve(store, {"chat_post": executor}, "bob@x.example", a.id)
    assert info.value.code == "not_found" and len(runs) == 1


def test_failures_are_recorded_never_retried(store):
    def refuse(owner: str, action: PendingAction) -> str:
        raise ActionFailed("550 5.1.1 no such user")

    def crash(owner: str, action: PendingAction) -> str:
        raise RuntimeError("bug")

    a = store.queue("alice@x.example", "mail_send", "s", {})
    assert approvals.approve(store, {"mail_send": refuse}, "alice@x.example", a.id).state == "failed"
    assert store.get(a.id).result == "550 5.1.1 no such user"  # type: ignore[union-attr]
    b = store.queue("alice@x.example", "mail_send", "s", {})
    with pytest.raises(RuntimeError):
        approvals.approve(store, {"mail_send": crash}, "alice@x.example", b.id)
    assert store.get(b.id).state == "failed"  # type: ignore[union-attr]
    c = store.queue("alice@x.example", "unknown_tool", "s", {})
    assert approvals.approve(store, {}, "alice@x.example", c.id).state == "failed"


def test_reject_and_expiry(store):
    a = store.queue("alice@x.example", "mail_delete", "d", {})
    store.reject("alice@x.example", a.id, "alice@x.example")
    assert store.get(a.id).state == "rejected"  # type: ignore[union-attr]
    b = store.queue("alice@x.example", "mail_delete", "d", {})
    with store.db.transaction() as conn:
        conn.execute("UPDATE pending_actions SET expires = ? WHERE id = ?", (time.time() - 1, b.id))
    assert store.count_pending("alice@x.example") == 0
    with pytest.raises(ActionError) as info:
        approvals.approve(store, {"mail_delete": lambda o, x: "no"}, "alice@x.example", b.id)
    assert info.value.code == "not_pending"
    assert [x.state for x in store.list("alice@x.example")] == ["expired", "rejected"]


def test_a_decided_actions_message_is_dropped_after_a_month(store):
    a = store.queue("alice@x.example", "mail_send", "s", {"rcpts": ["b@y.example"]}, b"x" * 1000)
    store.reject("alice@x.example", a.id, "alice@x.example")
    store.expire()
    assert store.get(a.id).message == b"x" * 1000  # type: ignore[union-attr]
    with store.db.transaction() as conn:
        conn.execute("UPDATE pending_actions SET decided = ? WHERE id = ?", (time.time() - 31 * 86400, a.id))
    pending = store.queue("alice@x.example", "mail_send", "s", {"rcpts": []}, b"kept")
    store.expire()
    assert store.get(a.id).message is None and store.get(a.id).payload == {"rcpts": ["b@y.example"]}  # type: ignore[union-attr]
    assert store.get(pending.id).message == b"kept"  # type: ignore[union-attr]
