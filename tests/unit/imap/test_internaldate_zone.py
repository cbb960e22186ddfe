"""INTERNALDATE's zone (no server): APPEND's zone is stored and printed back, COPY/MOVE keep it,
mail without one gets the server's zone at its time, BEFORE/ON/SINCE compare the calendar date
in the message's own zone (fast over 10,000 messages), and an index of schema version 3 keeps
all its data when migration 4 adds the zone (0: UTC, what it showed before)."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import zoneinfo
from pathlib import Path
from typing import Any

from gk.mail.imap.parser import Parser
from gk.mail.imap.response import internal_date
from gk.mail.mailbox import MailboxStore, maildir


def _msg(i: int, date: str = "Mon, 2 Nov 2026 10:00:00 +0000") -> bytes:
    return f"From: a@example.com\r\nSubject: m{i}\r\nDate: {date}\r\n\r\nbody {i}\r\n".encode()


def _ts(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z").timestamp()


def test_date_time_parses_the_zone_and_internal_date_prints_it() -> None:
    p = Parser([b'"17-Jul-1996 02:44:25 -0700"'])
    assert p.date_time() == (_ts("1996-07-17 02:44:25 -0700"), -420)
    p = Parser([b'" 1-Jan-2000 00:30:00 +0530"'])
    assert p.date_time() == (_ts("2000-01-01 00:30:00 +0530"), 330)
    assert internal_date(_ts("1996-07-17 02:44:25 -0700"), -420) == b'"17-Jul-1996 02:44:25 -0700"'
    assert internal_date(_ts("1996-07-17 02:44:25 -0700")) == b'"17-Jul-1996 09:44:25 +0000"'
    assert internal_date(_ts("2000-01-01 00:30:00 +0530"), 330) == b'"01-Jan-2000 00:30:00 +0530"'
    assert internal_date(_ts("2000-01-01 00:30:00 -0930"), -570) == b'"01-Jan-2000 00:30:00 -0930"'


def test_append_zone_is_kept_by_copy_and_move_and_searched_locally(tmp_path: Path) -> None:
    mb = MailboxStore(tmp_path / "mail").user("ann@example.org")
    late = _ts("2024-03-10 23:30:00 -0700")  # 11 March 06:30 UTC
    early = _ts("2024-03-11 00:30:00 +1100")  # 10 March 13:30 UTC
    mb.append("INBOX", _msg(1), internaldate=late, tzoffset=-420)
    mb.append("INBOX", _msg(2), internaldate=early, tzoffset=660)
    mb.append("INBOX", _msg(3), internaldate=_ts("2024-03-11 00:00:00 +0000"), tzoffset=0)
    infos = mb.infos("INBOX", [1, 2, 3])
    assert [(m.internaldate, m.tzoffset) for m in infos.values()] == [
        (int(late), -420),
        (int(early), 660),
        (int(_ts("2024-03-11 00:00:00 +0000")), 0),
    ]
    assert mb.search("INBOX", ("on", dt.date(2024, 3, 10))) == [1]
    assert mb.search("INBOX", ("on", dt.date(2024, 3, 11))) == [2, 3]
    assert mb.search("INBOX", ("before", dt.date(2024, 3, 11))) == [1]
    assert mb.search("INBOX", ("since", dt.date(2024, 3, 11))) == [2, 3]
    mb.copy("INBOX", [1], "Archive")
    mb.move("INBOX", [2], "Archive")
    moved = mb.infos("Archive", [1, 2])
    assert [(m.internaldate, m.tzoffset) for m in moved.values()] == [(int(late), -420), (int(early), 660)]
    assert mb.search("Archive", ("on", dt.date(2024, 3, 10))) == [1]


def test_mail_without_a_zone_gets_the_server_zone_at_its_time(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    ny = zoneinfo.ZoneInfo("America/New_York")
    mb = MailboxStore(root, zone=lambda: ny).user("ann@example.org")
    d = maildir.folder_path(root, "ann@example.org", "INBOX")
    winter = _ts("2024-01-15 23:30:00 -0500")
    summer = _ts("2024-07-15 23:30:00 -0400")
    for i, when in ((1, winter), (2, summer)):  # delivered behind the store's back (like SMTP)
        path = maildir.deliver(d, [_msg(i)])
        os.utime(path, (when, when))
    mb.sync("INBOX", force=True)
    mb.append("INBOX", _msg(3), internaldate=winter)  # webmail: a date, no zone
    got = mb.infos("INBOX", [1, 2, 3])
    assert [(m.internaldate, m.tzoffset) for m in got.values()] == [
        (int(winter), -300),
        (int(summer), -240),
        (int(winter), -300),
    ]
    assert mb.search("INBOX", ("on", dt.date(2024, 1, 15))) == [1, 3]  # 16 Jan in UTC
    # a rebuilt index (lost) gives every file the server's zone again
    mb.close()
    for suffix in ("", "-wal", "-shm"):
        (root / "ann@example.org" / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    mb = MailboxStore(root, zone=lambda: ny).user("ann@example.org")
    assert mb.folder("INBOX").exists == 3  # synced: the files are indexed again
    got = mb.infos("INBOX", mb.uids("INBOX"))
    assert sorted((m.internaldate, m.tzoffset) for m in got.values()) == [
        (int(winter), -300),
        (int(winter), -300),
        (int(summer), -240),
    ]
    # no zone source: UTC
    plain = MailboxStore(tmp_path / "other").user("bob@example.org")
    plain.append("INBOX", _msg(1), internaldate=summer)
    assert plain.info("INBOX", 1).tzoffset == 0


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        out = {}
        for table in ("folders", "messages", "expunged", "fts"):
            cols = [
                r[1]
                for r in conn.execute(f"PRAGMA table_info({table})")
                if r[1] not in ("tzoffset", "envwire", "bswire")
            ]
            out[table] = conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1, 2").fetchall()
        return out
    finally:
        conn.close()


def test_index_of_version_3_keeps_all_its_data(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    mb = MailboxStore(root).user("ann@example.org")
    for i in range(1, 6):
        mb.append("INBOX", _msg(i), flags=["\\Seen"] if i % 2 else [], internaldate=_ts(f"2024-05-0{i} 12:00:00 +0000"))
    mb.set_flags("INBOX", [2], ["\\Flagged", "$Todo"])
    mb.set_flags("INBOX", [4], ["\\Deleted"])
    mb.expunge("INBOX")
    mb.move("INBOX", [5], "Archive")
    mb.claim_recent("INBOX", 3)
    mb.close()
    # back to schema version 3: the index as the previous release left it
    path = root / "ann@example.org" / "index.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE messages DROP COLUMN tzoffset")
    conn.execute("DROP INDEX IF EXISTS messages_unparsed")
    conn.execute("ALTER TABLE messages DROP COLUMN envwire")
    conn.execute("ALTER TABLE messages DROP COLUMN bswire")
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    conn.close()
    before = _dump(path)
    assert before["messages"] and before["expunged"] and before["fts"]
    mb = MailboxStore(root).user("ann@example.org")
    assert mb.db.one("PRAGMA user_version")[0] == 7  # type: ignore[index]
    assert mb.folder("INBOX").exists == 3 and mb.folder("Archive").exists == 1
    assert _dump(path) == before  # nothing lost, nothing renumbered
    assert [r[0] for r in mb.db.query("SELECT DISTINCT tzoffset FROM messages")] == [0]
    assert internal_date(mb.info("INBOX", 1).internaldate, mb.info("INBOX", 1).tzoffset) == (
        b'"01-May-2024 12:00:00 +0000"'
    )
    assert mb.search("INBOX", ("on", dt.date(2024, 5, 2))) == [2]
    assert mb.vanished("INBOX", 0) == [4, 5]
    assert mb.recent_uid("INBOX") == 3


def test_date_search_over_10000_messages_in_many_zones(tmp_path: Path) -> None:
    mb = MailboxStore(tmp_path / "mail").user("ann@example.org")
    fid = mb.db.one("SELECT id FROM folders WHERE name = 'INBOX'")[0]  # type: ignore[index]
    base = int(_ts("2024-01-01 00:00:00 +0000"))
    rows = [
        (fid, uid, f"b{uid}", f"b{uid}:2,", 100, base + uid * 3600, (uid % 25 - 12) * 60, " ", 1)
        for uid in range(1, 10_001)
    ]
    with mb.db.transaction() as c:
        c.executemany(
            "INSERT INTO messages(folder_id, uid, base, name, size, internaldate, tzoffset, flags, modseq)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )
    day = dt.date(2024, 6, 1)
    expected_on = [r[1] for r in rows if dt.datetime.fromtimestamp(r[5] + 60 * r[6], dt.UTC).date() == day]
    on = mb.search("INBOX", ("on", day))
    before = mb.search("INBOX", ("before", day))
    since = mb.search("INBOX", ("since", day))
    both = mb.search("INBOX", ("and", [("since", day), ("before", dt.date(2024, 6, 3))]))
    assert on == expected_on and len(on) >= 24
    assert len(before) + len(since) == 10_000 and set(on) <= set(since)
    assert set(on) < set(both)
