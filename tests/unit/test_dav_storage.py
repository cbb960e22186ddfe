"""GK's SQLite storage plugin driven through Radicale's storage interface the way Radicale's
application calls it (acquire_lock, discover, create_collection, upload, delete, move, meta,
sync, get_filtered), with every test also run against Radicale's own ``multifilesystem``
backend as the reference: a difference between the two is a bug in ours.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import gevent
import pytest
from radicale import config as radicale_config
from radicale import item as radicale_item
from radicale import storage as radicale_storage
from radicale.storage import multifilesystem_nolock

from gk.dav.rwlock import RWLock
from gk.dav.storage import Storage

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//GK//test//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART:{start}
DTEND:{end}
SUMMARY:{summary}
END:VEVENT
END:VCALENDAR
"""

TODO = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//GK//test//EN
BEGIN:VTODO
UID:{uid}
DTSTAMP:20260101T000000Z
SUMMARY:a task
END:VTODO
END:VCALENDAR
"""

VCARD = """BEGIN:VCARD
VERSION:3.0
UID:{uid}
FN:{name}
N:{name};;;;
EMAIL:{uid}@example.org
END:VCARD
"""

CAL_PROPS = {"tag": "VCALENDAR", "D:displayname": "Calendar", "C:supported-calendar-component-set": "VEVENT,VTODO"}


def make_item(text: str, collection_path: str) -> radicale_item.Item:
    (component,) = radicale_item.read_components(text)
    item = radicale_item.Item(collection_path=collection_path, vobject_item=component)
    item.prepare()
    return item


def event(uid: str, day: int = 10, summary: str = "meeting", month: int = 3) -> str:
    return EVENT.format(
        uid=uid, start=f"2026{month:02d}{day:02d}T090000Z", end=f"2026{month:02d}{day:02d}T100000Z", summary=summary
    )


@pytest.fixture(params=["gk", "multifilesystem"])
def store(request, tmp_path: Path) -> radicale_storage.BaseStorage:
    configuration = radicale_config.load()
    configuration.update(
        {"storage": {"filesystem_folder": str(tmp_path / "collections")}},
        "test",
        privileged=True,
    )
    if request.param == "gk":
        s: radicale_storage.BaseStorage = Storage(configuration, tmp_path / "dav.sqlite3")
    else:
        s = multifilesystem_nolock.Storage(configuration)
    return s


def discover(s: radicale_storage.BaseStorage, path: str, depth: str = "0") -> list:
    with s.acquire_lock("r", "alice"):
        return list(s.discover(path, depth))


def make_calendar(s: radicale_storage.BaseStorage, path: str = "/alice/cal/") -> radicale_storage.BaseCollection:
    with s.acquire_lock("w", "alice"):
        s.create_collection("/alice/")
        col, _, _ = s.create_collection(path, props=CAL_PROPS)
    return col


def put(s: radicale_storage.BaseStorage, path: str, href: str, text: str) -> tuple:
    with s.acquire_lock("w", "alice"):
        (col,) = list(s.discover(path))
        return col.upload(href, make_item(text, col.path))


def test_root_always_exists_and_principal_is_created(store):
    (root,) = discover(store, "/")
    assert root.path == "" and not root.tag
    assert discover(store, "/alice/") == []
    with store.acquire_lock("w", "alice"):
        col, replaced, new = store.create_collection("/alice/")
    assert col.path == "alice" and col.is_principal and (replaced, new) == ({}, [])
    (principal,) = discover(store, "/alice/")
    assert principal.path == "alice" and principal.owner == "alice"
    root_children = [c.path for c in discover(store, "/", "1")[1:]]
    assert root_children == ["alice"]


def test_discover_every_depth(store):
    make_calendar(store)
    put(store, "/alice/cal/", "a.ics", event("a"))
    put(store, "/alice/cal/", "b.ics", event("b", 11))
    with store.acquire_lock("w", "alice"):
        store.create_collection("/alice/contacts/", props={"tag": "VADDRESSBOOK"})
    found = discover(store, "/alice/", "1")
    assert [getattr(x, "path", None) for x in found] == ["alice", "alice/cal", "alice/contacts"]
    found = discover(store, "/alice/cal/", "1")
    assert found[0].tag == "VCALENDAR"
    assert sorted(x.href for x in found[1:]) == ["a.ics", "b.ics"]
    (item,) = discover(store, "/alice/cal/a.ics")
    assert item.uid == "a" and item.component_name == "VEVENT" and item.etag.startswith('"')
    assert item.last_modified and "GMT" in item.last_modified
    assert discover(store, "/alice/cal/missing.ics") == []
    assert discover(store, "/bob/cal/") == []


def test_upload_replace_and_delete(store):
    col = make_calendar(store)
    new, old = put(store, "/alice/cal/", "a.ics", event("a", summary="first"))
    assert old is None and "first" in new.serialize()
    new2, old2 = put(store, "/alice/cal/", "a.ics", event("a", summary="second"))
    assert old2 is not None and "first" in old2.serialize() and new2.etag != new.etag
    (col,) = discover(store, "/alice/cal/")
    assert col.has_uid("a") and not col.has_uid("zzz")
    assert [i.href for i in col.get_all()] == ["a.ics"]
    with store.acquire_lock("w", "alice"):
        col.delete("a.ics")
    assert discover(store, "/alice/cal/a.ics") == []
    with store.acquire_lock("w", "alice"), pytest.raises(radicale_storage.ComponentNotFoundError):
        col.delete("a.ics")


def test_unsafe_hrefs_are_refused_or_not_found(store):
    col = make_calendar(store)
    for bad in ("../x.ics", ".hidden", "a/b.ics", "", "~x~"):
        with store.acquire_lock("w", "alice"), pytest.raises(ValueError):
            col.upload(bad, make_item(event("z"), col.path))
    hrefs = dict(col.get_multi(["../x.ics", ".Radicale.props", "nope.ics"]))
    assert hrefs == {"../x.ics": None, ".Radicale.props": None, "nope.ics": None}


def test_get_multi_returns_each_asked_href(store):
    make_calendar(store)
    for uid in "abc":
        put(store, "/alice/cal/", f"{uid}.ics", event(uid))
    (col,) = discover(store, "/alice/cal/")
    got = dict(col.get_multi(["a.ics", "c.ics", "x.ics"]))
    assert set(got) == {"a.ics", "c.ics", "x.ics"}
    assert got["x.ics"] is None and got["a.ics"].uid == "a" and got["c.ics"].uid == "c"


def test_meta_and_etag_follow_changes(store):
    col = make_calendar(store)
    assert col.get_meta("D:displayname") == "Calendar" and col.tag == "VCALENDAR"
    etag0 = col.etag
    with store.acquire_lock("w", "alice"):
        col.set_meta({**CAL_PROPS, "D:displayname": "Renamed"})
    (col,) = discover(store, "/alice/cal/")
    assert col.get_meta("D:displayname") == "Renamed" and col.get_meta()["tag"] == "VCALENDAR"
    etag1 = col.etag
    assert etag1 != etag0
    put(store, "/alice/cal/", "a.ics", event("a"))
    (col,) = discover(store, "/alice/cal/")
    assert col.etag != etag1
    assert col.last_modified.endswith("GMT")


def test_sync_tokens_across_changes_and_deletions(store):
    make_calendar(store)
    put(store, "/alice/cal/", "a.ics", event("a"))
    put(store, "/alice/cal/", "b.ics", event("b"))
    (col,) = discover(store, "/alice/cal/")
    token0, hrefs = col.sync()
    assert sorted(hrefs) == ["a.ics", "b.ics"]
    token_same, nothing = col.sync(token0)
    assert token_same == token0 and list(nothing) == []
    put(store, "/alice/cal/", "a.ics", event("a", summary="changed"))
    put(store, "/alice/cal/", "c.ics", event("c"))
    with store.acquire_lock("w", "alice"):
        col.delete("b.ics")
    (col,) = discover(store, "/alice/cal/")
    token1, changed = col.sync(token0)
    assert token1 != token0
    assert sorted(changed) == ["a.ics", "b.ics", "c.ics"]
    token2, none = col.sync(token1)
    assert token2 == token1 and list(none) == []
    for bad in ("garbage", "http://radicale.org/ns/sync/xyz", "http://gk.invalid/ns/sync/1-x"):
        with pytest.raises(ValueError):
            col.sync(bad)


def test_sync_token_of_a_recreated_collection_is_refused(store):
    make_calendar(store)
    put(store, "/alice/cal/", "a.ics", event("a"))
    (col,) = discover(store, "/alice/cal/")
    token, _ = col.sync()
    with store.acquire_lock("w", "alice"):
        col.delete()
    make_calendar(store)
    put(store, "/alice/cal/", "z.ics", event("z"))
    (col,) = discover(store, "/alice/cal/")
    with pytest.raises(ValueError):
        col.sync(token)


def test_filtered_by_time_range_and_component(store):
    make_calendar(store)
    for day in range(1, 29):
        put(store, "/alice/cal/", f"e{day}.ics", event(f"e{day}", day, month=2))
    put(store, "/alice/cal/", "t.ics", TODO.format(uid="t"))
    (col,) = discover(store, "/alice/cal/")
    cal_filter = ET.fromstring(
        '<C:filter xmlns:C="urn:ietf:params:xml:ns:caldav"><C:comp-filter name="VCALENDAR">'
        '<C:comp-filter name="VEVENT"><C:time-range start="20260209T000000Z" end="20260216T000000Z"/>'
        "</C:comp-filter></C:comp-filter></C:filter>"
    )
    got = sorted(item.href for item, _ in col.get_filtered([cal_filter]))
    assert got == sorted(f"e{d}.ics" for d in range(9, 16))
    todo_filter = ET.fromstring(
        '<C:filter xmlns:C="urn:ietf:params:xml:ns:caldav"><C:comp-filter name="VCALENDAR">'
        '<C:comp-filter name="VTODO"/></C:comp-filter></C:filter>'
    )
    assert [item.href for item, _ in col.get_filtered([todo_filter])] == ["t.ics"]


def test_whole_collection_put_replaces_items(store):
    make_calendar(store)
    put(store, "/alice/cal/", "a.ics", event("a"))
    put(store, "/alice/cal/", "old.ics", event("old"))
    items = [make_item(event("a", summary="new a"), "alice/cal"), make_item(event("n"), "alice/cal")]
    with store.acquire_lock("w", "alice"):
        col, replaced, new_hrefs = store.create_collection("/alice/cal/", items=items, props=CAL_PROPS)
    assert sorted(replaced) == ["a.ics"] and "meeting" in replaced["a.ics"].serialize()
    assert new_hrefs == ["n.ics"]
    (col,) = discover(store, "/alice/cal/")
    assert sorted(i.href for i in col.get_all()) == ["a.ics", "n.ics"]
    assert "new a" in dict(col.get_multi(["a.ics"]))["a.ics"].serialize()


def test_move_between_collections(store):
    make_calendar(store)
    make_calendar(store, "/alice/work/")
    put(store, "/alice/cal/", "a.ics", event("a"))
    (src,) = discover(store, "/alice/cal/")
    token, _ = src.sync()
    (dst,) = discover(store, "/alice/work/")
    (item,) = discover(store, "/alice/cal/a.ics")
    with store.acquire_lock("w", "alice"):
        store.move(item, dst, "moved.ics")
    assert discover(store, "/alice/cal/a.ics") == []
    (moved,) = discover(store, "/alice/work/moved.ics")
    assert moved.uid == "a"
    (src,) = discover(store, "/alice/cal/")
    _, changed = src.sync(token)
    assert list(changed) == ["a.ics"]


def test_delete_collection_removes_children(store):
    make_calendar(store)
    put(store, "/alice/cal/", "a.ics", event("a"))
    (principal,) = discover(store, "/alice/")
    with store.acquire_lock("w", "alice"):
        principal.delete()
    assert discover(store, "/alice/") == [] and discover(store, "/alice/cal/") == []
    assert discover(store, "/alice/cal/a.ics") == []


def test_vcards_round_trip(store):
    with store.acquire_lock("w", "alice"):
        store.create_collection("/alice/")
        store.create_collection("/alice/contacts/", props={"tag": "VADDRESSBOOK"})
    put(store, "/alice/contacts/", "c.vcf", VCARD.format(uid="c1", name="Carol"))
    (item,) = discover(store, "/alice/contacts/c.vcf")
    assert item.name == "VCARD" and item.uid == "c1" and "FN:Carol" in item.serialize()


def test_writers_exclude_readers_cooperatively(tmp_path):
    """The lock is a greenlet switch, never a blocked hub: a reader waits for a writer's
    transaction, and a writer waits for the readers inside."""
    lock = RWLock()
    order: list[str] = []

    def writer() -> None:
        with lock.acquire("w"):
            order.append("w-in")
            gevent.sleep(0.05)
            order.append("w-out")

    def reader(name: str) -> None:
        with lock.acquire("r"):
            order.append(f"{name}-in")
            with lock.acquire("r"):  # re-entrant
                gevent.sleep(0.01)
            order.append(f"{name}-out")

    w = gevent.spawn(writer)
    gevent.sleep(0)
    readers = [gevent.spawn(reader, f"r{i}") for i in range(3)]
    gevent.joinall([w, *readers], timeout=60)
    assert order[:2] == ["w-in", "w-out"]
    assert sorted(order[2:5]) == ["r0-in", "r1-in", "r2-in"]
    assert lock.locked == ""


def test_failed_write_in_a_request_keeps_earlier_state(tmp_path):
    """A storage error that Radicale turns into an error reply inside its write lock rolls back
    that write alone; the request's transaction still commits what came before."""
    configuration = radicale_config.load()
    s = Storage(configuration, tmp_path / "dav.sqlite3")
    make_calendar(s)
    put(s, "/alice/cal/", "a.ics", event("a"))

    class Broken:
        uid = "x"

        @property
        def time_range(self):
            raise ValueError("broken item")

    with s.acquire_lock("w", "alice"):
        with pytest.raises(ValueError):
            s.create_collection("/alice/cal/", items=[Broken()], props=CAL_PROPS)  # type: ignore[list-item]
    (item,) = discover(s, "/alice/cal/a.ics")
    assert item.uid == "a"
    assert s.verify()


def test_concurrent_writers_and_readers_interleave_safely(tmp_path):
    """Greenlets writing and syncing at once (each yields inside its lock): every write lands,
    every reader sees a consistent collection, sync tokens only move forward."""
    s = Storage(radicale_config.load(), tmp_path / "dav.sqlite3")
    make_calendar(s)
    seen: list[int] = []

    def writer(w: int) -> None:
        for i in range(10):
            with s.acquire_lock("w", "alice"):
                (col,) = list(s.discover("/alice/cal/"))
                gevent.sleep(0)
                col.upload(f"w{w}-{i}.ics", make_item(event(f"w{w}-{i}", 1 + i), col.path))

    def reader() -> None:
        for _ in range(20):
            with s.acquire_lock("r", "alice"):
                (col,) = list(s.discover("/alice/cal/"))
                token, hrefs = col.sync()
                gevent.sleep(0)
                assert len(list(col.get_all())) == len(list(hrefs))
                seen.append(int(token.rsplit("-", 1)[1]))
            gevent.sleep(0)

    jobs = [gevent.spawn(writer, w) for w in range(5)] + [gevent.spawn(reader) for _ in range(3)]
    gevent.joinall(jobs, timeout=120, raise_error=True)
    (col,) = discover(s, "/alice/cal/")
    assert len(list(col.get_all())) == 50
    assert col.sync()[0].endswith("-50")


def test_token_older_than_kept_deletions_is_refused(tmp_path, monkeypatch):
    import gk.dav.storage as dav_storage

    monkeypatch.setattr(dav_storage, "TOMBSTONE_SECONDS", 0)
    s = Storage(radicale_config.load(), tmp_path / "dav.sqlite3")
    make_calendar(s)
    for uid in "abc":
        put(s, "/alice/cal/", f"{uid}.ics", event(uid))
    (col,) = discover(s, "/alice/cal/")
    before, _ = col.sync()
    with s.acquire_lock("w", "alice"):
        col.delete("a.ics")
    after_a, _ = col.sync()
    gevent.sleep(0.01)
    with s.acquire_lock("w", "alice"):
        col.delete("b.ics")  # purges a's tombstone, now older than the (zero) horizon
    with pytest.raises(ValueError):
        col.sync(before)  # would need a's tombstone: the client must resync fully
    _, changed = col.sync(after_a)
    assert list(changed) == ["b.ics"]


def test_lock_shared_between_a_pool_thread_and_the_hub(tmp_path):
    """Radicale's requests run in a pool thread (gk.dav.service): a writer there keeps a reader on
    the hub out until it is done, and the hub keeps running other greenlets meanwhile."""
    import threading

    from gk import pools

    lock = RWLock()
    order: list[str] = []
    inside = threading.Event()
    ticks = []

    def writer_in_thread() -> None:
        with lock.acquire("w"):
            order.append("w-in")
            inside.set()
            time.sleep(0.3)  # a native sleep: the thread holds the lock, not the hub
            order.append("w-out")

    def reader() -> None:
        while not inside.is_set():
            gevent.sleep(0.005)
        with lock.acquire("r"):
            order.append("r-in")

    def ticker() -> None:
        while len(order) < 3:
            ticks.append(1)
            gevent.sleep(0.01)

    jobs = [gevent.spawn(pools.run_io, writer_in_thread), gevent.spawn(reader), gevent.spawn(ticker)]
    gevent.joinall(jobs, timeout=60)
    assert order == ["w-in", "w-out", "r-in"]
    assert len(ticks) > 3  # the hub ran the ticker while the thread held the lock
    assert lock.locked == ""


def test_truncated_initial_sync_continues_past_purged_deletions(tmp_path, monkeypatch):
    """RFC 6578 §3.6 pages: an initial sync cut after 2 members continues from its token even when
    deletions older than that token's position were purged meanwhile (the token's floor: those
    objects were gone before the client's first page); the pages together list every member once,
    and a later deletion of a member the client has is reported."""
    import gk.dav.storage as dav_storage

    monkeypatch.setattr(dav_storage, "TOMBSTONE_SECONDS", 0)
    s = Storage(radicale_config.load(), tmp_path / "dav.sqlite3")
    make_calendar(s)
    for uid in "abcdefg":
        put(s, "/alice/cal/", f"{uid}.ics", event(uid))
    (col,) = discover(s, "/alice/cal/")
    with s.acquire_lock("w", "alice"):
        col.delete("g.ics")
    gevent.sleep(0.01)
    with s.acquire_lock("w", "alice"):
        col.delete("f.ics")  # purges g's tombstone: purged_seq is now past a..e's positions

    def page(token: str, limit: int) -> tuple[str, list[str], bool]:
        sync_page = dav_storage.SyncPage(limit)
        reset = dav_storage.SYNC_PAGE.set(sync_page)
        try:
            new, names = col.sync(token)
        finally:
            dav_storage.SYNC_PAGE.reset(reset)
        return new, list(names), sync_page.truncated

    token, names, truncated = page("", 2)
    assert truncated and names == ["a.ics", "b.ics"] and token.count("-") == 2, token
    seen = list(names)
    while truncated:
        token, names, truncated = page(token, 2)
        seen += names
    assert seen == ["a.ics", "b.ics", "c.ics", "d.ics", "e.ics"]
    with s.acquire_lock("w", "alice"):
        col.delete("a.ics")
    assert page(token, 2)[1:] == (["a.ics"], False)
    with pytest.raises(ValueError):
        col.sync(token.rpartition("-")[0] + "-999")  # a floor from the future
