"""The chat store and core on a real SQLite file: group commit (many concurrent posts share
commits), history windows, edits, redactions, reactions, read markers, FTS search, private
rooms, and event fan-out that survives a failing subscriber."""

from __future__ import annotations

import sqlite3

import gevent
import pytest

from gk.chat.core import ChatError, ChatService, Joined, MessagePosted
from gk.chat.store import ChatStore, dm_target


@pytest.fixture
def chat(tmp_path):
    svc = ChatService(ChatStore(tmp_path / "chat.sqlite3"), ["general"], lambda name: name in {"alice", "bob", "carol"})
    yield svc
    svc.stop()


def test_wal_full_sync_and_default_room(chat, tmp_path):
    assert chat.store.reader.one("PRAGMA journal_mode")[0] == "wal"
    assert chat.store._wconn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert [r.name for r in chat.rooms()] == ["general"]
    chat.connected("alice")
    chat.connected("alice")  # the second login does not re-join
    assert chat.members("general") == {"alice"}


def test_group_commit_batches_concurrent_posts(chat):
    chat.join("general", "alice")
    n = 300
    greenlets = [gevent.spawn(chat.post, "alice", "#general", f"m{i}") for i in range(n)]
    gevent.joinall(greenlets, raise_error=True)
    ids = [g.value.msgid for g in greenlets]
    assert len(set(ids)) == n
    assert chat.store.count("#general") == n
    # every post was acknowledged after a commit, and they shared commits
    assert chat.store.writer.jobs >= n
    assert chat.store.writer.batches < n / 2
    # the data is visible to an independent connection (it was committed, not cached)
    conn = sqlite3.connect(chat.store.path)
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == n


def test_failing_job_does_not_sink_its_batch(chat):
    w = chat.store.writer

    def bad(c):
        c.execute("INSERT INTO rooms(name, created) VALUES ('general', 0)")  # UNIQUE violation

    def good(c):
        c.execute("INSERT INTO rooms(name, created) VALUES ('other', 0)")
        return "ok"

    g1, g2 = gevent.spawn(w.submit, bad), gevent.spawn(w.submit, good)
    gevent.joinall([g1, g2])
    assert isinstance(g1.exception, sqlite3.IntegrityError)
    assert g2.value == "ok" and chat.room("other") is not None


def test_history_windows(chat):
    chat.join("general", "alice")
    msgs = [chat.post("alice", "#general", f"m{i}") for i in range(10)]
    text = lambda ms: [m.text for m in ms]  # noqa: E731
    assert text(chat.history("alice", "#general", "latest", 3)) == ["m7", "m8", "m9"]
    assert text(chat.history("alice", "#general", "latest", 5, msgs[7].msgid)) == ["m8", "m9"]
    assert text(chat.history("alice", "#general", "before", 2, msgs[5].msgid)) == ["m3", "m4"]
    assert text(chat.history("alice", "#general", "after", 2, msgs[5].msgid)) == ["m6", "m7"]
    assert text(chat.history("alice", "#general", "around", 4, msgs[5].msgid)) == ["m3", "m4", "m5", "m6"]
    assert text(chat.history("alice", "#general", "between", 10, msgs[2].msgid, msgs[5].msgid)) == ["m3", "m4"]
    assert text(chat.history("alice", "#general", "between", 1, msgs[5].msgid, msgs[2].msgid)) == ["m4"]
    assert text(chat.history("alice", "#general", "after", 2, msgs[0].time - 1)) == ["m0", "m1"]
    with pytest.raises(ChatError) as e:
        chat.history("alice", "#general", "before", 2, "nope")
    assert e.value.code == "no_such_message"
    with pytest.raises(ChatError) as e:
        chat.history("bob", "#general", "latest", 2)  # not a member
    assert e.value.code == "not_member"


def test_dm_edit_redact_react_marker_search(chat):
    m = chat.post("alice", "bob", "lunch at noon?")
    assert m.target == dm_target("alice", "bob") == dm_target("bob", "alice")
    assert [x.text for x in chat.history("bob", "alice", "latest", 5)] == ["lunch at noon?"]
    with pytest.raises(ChatError):
        chat.post("alice", "nobody", "x")
    with pytest.raises(ChatError) as e:
        chat.edit("bob", m.msgid, "hacked")
    assert e.value.code == "not_allowed"
    chat.edit("alice", m.msgid, "lunch at one?")
    assert chat.store.message(m.msgid).text == "lunch at one?"
    chat.react("bob", m.msgid, "👍")
    assert chat.store.reactions(m.msgid) == [("bob", "👍")]
    assert [x.text for x in chat.search("bob", "one")] == ["lunch at one?"]
    assert chat.search("bob", "noon") == []  # the FTS index follows edits
    assert chat.search("carol", "one") == []  # not her conversation
    chat.post("carol", "bob", "lunch at one too")
    assert chat.store.dm_targets_of("a_ice") == [] and chat.store.dm_targets_of("%") == []  # no LIKE wildcards
    assert sorted(chat.store.dm_targets_of("bob")) == [dm_target("alice", "bob"), dm_target("bob", "carol")]
    assert chat.search("bob", 'one" OR "x') == []  # user text is never FTS syntax
    assert chat.mark_read("bob", "alice", m.time) == m.time
    assert chat.mark_read("bob", "alice", m.time - 5) == m.time  # markers only move forward
    assert chat.read_marker("bob", "alice") == m.time
    chat.redact("alice", m.msgid)
    assert chat.history("bob", "alice", "latest", 5) == []
    assert chat.store.reactions(m.msgid) == []
    assert [x.text for x in chat.search("bob", "one")] == ["lunch at one too"]


def test_private_room_invite_flow(chat):
    chat.create_room("board", "alice", private=True)
    with pytest.raises(ChatError) as e:
        chat.join("board", "bob")
    assert e.value.code == "invite_only"
    assert "board" not in [r.name for r in chat.rooms("bob")]
    assert chat.members("board") == {"alice"}  # the creator is its first member
    chat.invite("board", "bob", "alice")
    chat.join("board", "bob")
    assert chat.members("board") == {"alice", "bob"}
    assert "board" in [r.name for r in chat.rooms("bob")]


def test_a_private_room_reads_as_missing_to_whoever_may_not_join_it(chat):
    """Every refusal about a private room to someone neither in it nor invited is the one a
    missing room gets, code and text (test_chat_private_rooms.py: the same over IRC and the web)."""
    chat.create_room("vault", "alice", private=True)
    calls = [
        lambda r: chat.part(r, "bob"),
        lambda r: chat.invite(r, "carol", "bob"),
        lambda r: chat.set_topic(r, "mine", "bob"),
        lambda r: chat.set_private(r, False, "bob"),
        lambda r: chat.post("bob", "#" + r, "hello"),
        lambda r: chat.history("bob", "#" + r, "latest", 5),
        lambda r: chat.mark_read("bob", "#" + r, 1),
        lambda r: chat.typing("bob", "#" + r),
    ]
    for call in calls:
        refusals = []
        for name in ("vault", "nomen"):  # a private room of alice's, a name nobody took
            with pytest.raises(ChatError) as e:
                call(name)
            refusals.append((e.value.code, str(e.value).replace(name, "ROOM")))
        assert refusals[0] == refusals[1] and refusals[0][0] == "no_such_room", refusals
    assert chat.visible_room("vault", "bob") is None and chat.visible_room("vault", "alice") is not None
    with pytest.raises(ChatError) as e:
        chat.join("vault", "bob")  # a join would create a free name: this refusal cannot look missing
    assert e.value.code == "invite_only"
    chat.invite("vault", "bob", "alice")  # invited: it exists for bob, who may join it
    assert chat.visible_room("vault", "bob") is not None
    with pytest.raises(ChatError) as e:
        chat.part("vault", "bob")
    assert e.value.code == "not_member"
    assert chat.manage_room("vault", "admin", topic="by the admin").topic == "by the admin"  # admins still can


def test_events_fan_out_and_a_failing_subscriber(chat):
    seen_a, seen_b, everything = [], [], []

    def broken(ev):
        raise RuntimeError("subscriber bug")

    chat.subscribe(broken, "alice")
    chat.subscribe(seen_a.append, "alice")
    chat.subscribe(seen_b.append, "bob")
    chat.subscribe(everything.append)
    chat.join("general", "alice")
    chat.join("general", "bob")
    m = chat.post("alice", "#general", "hi all", origin="dev1")
    assert any(isinstance(e, MessagePosted) and e.message.msgid == m.msgid and e.origin == "dev1" for e in seen_a)
    assert any(isinstance(e, MessagePosted) for e in seen_b)
    assert any(isinstance(e, Joined) and e.account == "bob" for e in seen_a)
    chat.post("carol", "bob", "psst")  # a DM reaches bob only
    assert sum(isinstance(e, MessagePosted) for e in seen_a) == 1
    assert sum(isinstance(e, MessagePosted) for e in seen_b) == 2
    assert sum(isinstance(e, MessagePosted) for e in everything) == 2
    chat.unsubscribe(seen_b.append, "bob")
    chat.post("alice", "#general", "again")
    assert sum(isinstance(e, MessagePosted) for e in seen_b) == 2


def test_reopen_keeps_everything(tmp_path):
    svc = ChatService(ChatStore(tmp_path / "c.sqlite3"), ["general"])
    svc.join("general", "alice")
    svc.post("alice", "#general", "persisted")
    svc.stop()
    svc = ChatService(ChatStore(tmp_path / "c.sqlite3"), ["general"])
    assert svc.members("general") == {"alice"}
    assert [m.text for m in svc.history("alice", "#general", "latest", 5)] == ["persisted"]
    svc.stop()


def test_changed_since_finds_reactions_added_and_removed(chat):
    """A page resuming redraws what changed while it was away: a reaction removed leaves no row
    behind, yet its message is found (its ``changed`` time moved)."""
    import time

    chat.join("general", "alice")
    ms = [chat.post("alice", "#general", f"m{i}") for i in range(3)]
    chat.react("alice", ms[0].msgid, "👍")
    chat.react("alice", ms[1].msgid, "👍")
    time.sleep(0.01)
    since = int(time.time() * 1000)
    time.sleep(0.01)
    assert chat.store.changed_since("#general", ms[0].msgid, ms[2].msgid, since) == []
    chat.react("alice", ms[1].msgid, "👍", add=False)
    found = chat.store.changed_since("#general", ms[0].msgid, ms[2].msgid, since)
    assert [m.msgid for m in found] == [ms[1].msgid]
    assert chat.store.reactions(ms[1].msgid) == []


def test_bulk_inserts_share_one_statement_and_fall_back_one_by_one(chat, monkeypatch):
    """New messages of one batch are one executemany with consecutive seqs; when that
    statement fails (a duplicate msgid here), they run one by one and only the bad one fails.
    Messages and events share one seq order."""
    chat.join("general", "alice")
    msgs = [g.value for g in gevent.joinall([gevent.spawn(chat.post, "alice", "#general", f"m{i}") for i in range(5)])]
    seqs = sorted(m.seq for m in msgs)
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert [m.text for m in chat.history("alice", "#general", "latest", 10)] == [f"m{i}" for i in range(5)]
    import gk.chat.store as store_mod

    ids = iter(["dup", "dup", "fresh"])
    monkeypatch.setattr(store_mod, "new_msgid", lambda: next(ids))
    gs = [gevent.spawn(chat.post, "alice", "#general", t) for t in ("a", "b", "c")]
    gevent.joinall(gs)
    assert [g.exception is None for g in gs] == [True, False, True]
    assert isinstance(gs[1].exception, sqlite3.IntegrityError)
    assert [m.text for m in chat.history("alice", "#general", "latest", 2)] == ["a", "c"]
    # an event takes the next seq after the messages: replayed in order with them
    monkeypatch.undo()
    chat.set_topic("general", "news", "alice")
    items = chat.history("alice", "#general", "latest", 2, events=True)
    assert [(m.kind, m.text) for m in items] == [("PRIVMSG", "c"), ("TOPIC", "news")]
    assert items[1].seq > items[0].seq and items[1].msgid
    assert chat.history("alice", "#general", "after", 5, items[0].msgid) == []  # messages only
    assert [m.kind for m in chat.history("alice", "#general", "after", 5, items[0].msgid, events=True)] == ["TOPIC"]


def test_early_subscribers_get_a_message_before_its_commit_and_again_once_durable(chat):
    """IRC connections (early subscribers) are handed a new message as its write is queued,
    so fan-out does not wait for the fsync; everyone else, and the durable copy that the
    sender's echo is made of, comes only after the commit."""
    chat.join("general", "alice")
    chat.join("general", "bob")
    early, late = [], []

    def on_early(ev):
        if isinstance(ev, MessagePosted):
            # not on disk yet: the store does not know it, and it has no seq
            early.append((ev.durable, ev.message.seq, chat.store.message(ev.message.msgid) is not None))

    def on_late(ev):
        if isinstance(ev, MessagePosted):
            late.append((ev.durable, chat.store.message(ev.message.msgid) is not None))

    reacting = []

    def react_at_once(ev):  # a client reacting to the line the moment it arrives
        if isinstance(ev, MessagePosted) and not ev.durable:
            reacting.append(gevent.spawn(chat.react, "bob", ev.message.msgid, "+1"))

    chat.subscribe(on_early, "bob", early=True)
    chat.subscribe(react_at_once, "bob", early=True)
    chat.subscribe(on_late, "bob")
    m = chat.post("alice", "#general", "quick")
    assert m.seq > 0
    assert early == [(False, 0, False), (True, m.seq, True)]
    gevent.joinall(reacting, raise_error=True)  # it waited for the commit, not "no such message"
    assert chat.store.reactions(m.msgid) == [("bob", "+1")]
    chat.unsubscribe(react_at_once, "bob")
    assert late == [(True, True)]  # a plain subscriber never sees the message before its commit
    chat.unsubscribe(on_early, "bob")
    chat.post("alice", "#general", "after")
    assert len(early) == 2 and len(late) == 2


def test_a_burst_is_published_after_its_commits_not_early(chat):
    """While writes queue up for the next commit, new messages are not published early: the
    batch then fans out together. Each message is marked with whether it went out early, so an
    IRC connection sends every message exactly once."""
    chat.join("general", "alice")
    chat.join("general", "bob")
    seen = []
    chat.subscribe(lambda ev: seen.append(ev) if isinstance(ev, MessagePosted) else None, "bob", early=True)
    posts = [gevent.spawn(chat.post, "alice", "#general", f"b{i}") for i in range(40)]
    gevent.joinall(posts, raise_error=True)
    before = {ev.message.msgid for ev in seen if not ev.durable}
    after = {ev.message.msgid: ev.early for ev in seen if ev.durable}
    assert len(after) == 40
    assert 1 <= len(before) < 40  # the first went early; most of the burst waited for commits
    assert all(after[msgid] == (msgid in before) for msgid in after)
