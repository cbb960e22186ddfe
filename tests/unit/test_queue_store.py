"""The queue's durable state on a real SQLite file and real spool files."""

from __future__ import annotations

import time

from gk.mail.queue.store import QueueStore


def spool_source(tmp_path, text: str = "Subject: x\r\n\r\nbody\r\n"):  # type: ignore[no-untyped-def]
    src = tmp_path / "src.eml"
    src.write_bytes(text.encode())
    return src


def test_add_stores_body_once_for_all_recipients_and_survives_reopen(tmp_path):
    store = QueueStore(tmp_path)
    name, size = store.write_spool(b"DKIM-Signature: x\r\n", spool_source(tmp_path))
    msg_id = store.add("a@l.example", ["b@x.example", "c@y.example", "b@x.example"], name, size, user="a@l.example")
    store.close()  # as after a crash: nothing kept in memory
    store = QueueStore(tmp_path)
    assert [r["rcpt"] for r in store.recipients_of(msg_id)] == ["b@x.example", "c@y.example"]
    assert [r["domain"] for r in store.recipients_of(msg_id)] == ["x.example", "y.example"]
    assert list(store.spool_dir.iterdir()) == [store.spool_path(name)]
    assert store.spool_path(name).read_bytes() == b"DKIM-Signature: x\r\nSubject: x\r\n\r\nbody\r\n"
    assert size == len(store.spool_path(name).read_bytes())
    assert store.db.one("PRAGMA synchronous")[0] == 2  # FULL


def test_deferral_reschedules_and_finishing_removes_message_and_spool(tmp_path):
    store = QueueStore(tmp_path)
    name, size = store.write_spool(b"", spool_source(tmp_path))
    msg_id = store.add("a@l.example", ["b@x.example", "c@x.example"], name, size, user="a@l.example")
    b, c = store.recipients_of(msg_id)
    later = time.time() + 120
    store.record_attempt(b["id"], host="mx[1.2.3.4]", outcome="deferred", reply="451 4.3.0 later", next_attempt=later)
    assert [r["id"] for r in store.due(time.time())] == [c["id"]]
    b = store.recipients_of(msg_id)[0]
    assert (b["attempts"], b["last_error"], b["next_attempt"]) == (1, "451 4.3.0 later", later)
    store.record_attempt(c["id"], host="mx", outcome="sent", reply="250 ok")
    assert store.finish_message_if_done(msg_id) is False  # b is still queued
    store.record_attempt(b["id"], host="mx", outcome="bounced", reply="550 no")
    assert store.finish_message_if_done(msg_id) is True
    assert store.message(msg_id) is None and list(store.spool_dir.iterdir()) == []


def test_ids_are_never_reused_and_orphans_are_cleaned(tmp_path):
    store = QueueStore(tmp_path)
    name, size = store.write_spool(b"", spool_source(tmp_path))
    first = store.add("a@l.example", ["b@x.example"], name, size, user="a@l.example")
    assert store.delete(first)
    name2, size2 = store.write_spool(b"", spool_source(tmp_path))
    second = store.add("a@l.example", ["b@x.example"], name2, size2, user="a@l.example")
    assert second > first
    orphan, _ = store.write_spool(b"", spool_source(tmp_path))  # a crash before the commit
    (store.spool_dir / "half.eml.tmp").write_bytes(b"partial")
    assert store.clean_orphans() == 2
    assert [p.name for p in store.spool_dir.iterdir()] == [name2]


def test_retry_and_snapshot(tmp_path):
    store = QueueStore(tmp_path)
    name, size = store.write_spool(b"", spool_source(tmp_path))
    msg_id = store.add("a@l.example", ["b@x.example"], name, size, user="a@l.example", subject="hi")
    (r,) = store.recipients_of(msg_id)
    store.record_attempt(r["id"], host="", outcome="deferred", reply="timeout", next_attempt=time.time() + 3600)
    assert store.due(time.time()) == []
    assert store.retry(msg_id) == 1
    assert len(store.due(time.time())) == 1
    (snap,) = store.snapshot()
    assert (snap["id"], snap["rcpt"], snap["state"], snap["last_error"], snap["subject"]) == (
        msg_id,
        "b@x.example",
        "queued",
        "timeout",
        "hi",
    )
    assert [a["outcome"] for a in store.attempts_of(r["id"])] == ["deferred"]


def test_a_message_finished_just_before_a_crash_is_removed_at_start(tmp_path):
    """kill -9 between the commit that ends the last recipient and the one that removes the
    message left a row nothing ever picked up again (issue 9 part 0)."""
    store = QueueStore(tmp_path)
    name, size = store.write_spool(b"", spool_source(tmp_path))
    done = store.add("a@l.example", ["b@x.example", "c@y.example"], name, size, user="a@l.example")
    name2, size2 = store.write_spool(b"", spool_source(tmp_path))
    pending = store.add("a@l.example", ["d@x.example", "e@x.example"], name2, size2, user="a@l.example")
    b, c = store.recipients_of(done)
    store.record_attempt(b["id"], host="mx", outcome="sent", reply="250 ok")
    store.record_attempt(c["id"], host="mx", outcome="bounced", reply="550 no")
    store.record_attempt(store.recipients_of(pending)[0]["id"], host="mx", outcome="sent", reply="250 ok")
    store.close()  # the crash: finish_message_if_done never ran
    store = QueueStore(tmp_path)
    assert store.finish_done_messages() == 1
    assert store.message(done) is None and store.message(pending) is not None
    assert [p.name for p in store.spool_dir.iterdir()] == [name2]
    assert store.finish_done_messages() == 0
