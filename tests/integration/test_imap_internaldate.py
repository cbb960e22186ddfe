"""INTERNALDATE keeps its zone (RFC 3501 2.3.3, 6.3.11): FETCH gives APPEND's date-time back as
given (not converted to +0000), SEARCH BEFORE/ON/SINCE compare the calendar date in the
message's own zone and SENTBEFORE/SENTON/SENTSINCE the Date header's date as written (6.4.4,
"disregarding time and timezone"); COPY and MOVE keep the zone, a restart keeps it, and mail that
comes without one (a file delivered into the Maildir) gets the owner's time zone."""

from __future__ import annotations

import datetime as dt
import os
import time

from support.imap import Raw, maildir, start_imap_server

# (APPEND date-time, Date header): near midnight in three zones; UTC dates differ from local ones
MESSAGES = [
    ("10-Mar-2024 23:30:00 -0700", "Sun, 10 Mar 2024 23:30:00 -0700"),  # 11 Mar 06:30 UTC
    ("11-Mar-2024 00:30:00 +1100", "Mon, 11 Mar 2024 00:30:00 +1100"),  # 10 Mar 13:30 UTC
    ("11-Mar-2024 00:00:00 +0000", "Mon, 11 Mar 2024 00:00:00 +0000"),
    ("10-Mar-2024 23:59:59 +0000", "Sun, 10 Mar 2024 23:59:59 +0000"),
    ("09-Mar-2024 23:00:00 +1100", "Sat, 9 Mar 2024 23:00:00 +1100"),  # 9 Mar 12:00 UTC
]

SEARCHES = {
    "ON 10-Mar-2024": [1, 4],
    "ON 11-Mar-2024": [2, 3],
    "ON 9-Mar-2024": [5],
    "ON 12-Mar-2024": [],
    "BEFORE 11-Mar-2024": [1, 4, 5],
    "BEFORE 10-Mar-2024": [5],
    "BEFORE 9-Mar-2024": [],
    "SINCE 11-Mar-2024": [2, 3],
    "SINCE 10-Mar-2024": [1, 2, 3, 4],
    "SINCE 12-Mar-2024": [],
    "SINCE 10-Mar-2024 BEFORE 11-Mar-2024": [1, 4],
    "NOT ON 10-Mar-2024": [2, 3, 5],
    "SENTON 10-Mar-2024": [1, 4],
    "SENTON 11-Mar-2024": [2, 3],
    "SENTBEFORE 11-Mar-2024": [1, 4, 5],
    "SENTSINCE 11-Mar-2024": [2, 3],
}


def _message(i: int, date: str) -> str:
    return f"From: carol@example.net\r\nTo: alice@example.org\r\nSubject: zone {i}\r\nDate: {date}\r\n\r\nbody {i}\r\n"


def _internaldates(r: Raw, count: int) -> list[bytes]:
    lines = r.cmd(f"FETCH 1:{count} (INTERNALDATE)")
    return [line for line in lines if line.startswith(b"* ")]


def _expected_fetch(dates: list[str]) -> list[bytes]:
    return [f'* {i} FETCH (INTERNALDATE "{d}")\r\n'.encode() for i, d in enumerate(dates, 1)]


def _search(r: Raw, criteria: str) -> list[int]:
    lines = [line for line in r.cmd(f"SEARCH {criteria}") if line.startswith(b"* SEARCH")]
    assert len(lines) == 1, lines
    return [int(x) for x in lines[0].split()[2:]]


def _check_folder(r: Raw, folder: str) -> None:
    r.cmd(f"SELECT {folder}")
    assert _internaldates(r, len(MESSAGES)) == _expected_fetch([d for d, _ in MESSAGES])
    got = {criteria: _search(r, criteria) for criteria in SEARCHES}
    assert got == SEARCHES
    uid_lines = [line for line in r.cmd("UID SEARCH ON 10-Mar-2024") if line.startswith(b"* SEARCH")]
    assert uid_lines == [b"* SEARCH 1 4\r\n"]


def _deliver(srv, data: bytes, when: float) -> None:  # type: ignore[no-untyped-def]
    """A message delivered into INBOX behind the server's back, received at ``when``."""
    d = maildir(srv)
    name = f"{time.time_ns()}.test{os.getpid()}.localhost"
    tmp = d / "tmp" / name
    tmp.write_bytes(data)
    os.utime(tmp, (when, when))
    os.rename(tmp, d / "new" / name)


def test_internaldate_zone_fetch_search_copy_move_restart(make_server):  # type: ignore[no-untyped-def]
    from gk import localtime

    srv = start_imap_server(make_server)
    localtime.set_zone(srv.data_dir, "America/New_York")  # the owner's zone: for mail without one
    r = Raw(srv)
    for folder in ("zones", "zcopy", "zmoved"):
        r.cmd(f"CREATE {folder}")
    for i, (date, header) in enumerate(MESSAGES, 1):
        body = _message(i, header)
        r.cmd(f'APPEND zones "{date}" {{{len(body)}+}}\r\n{body}')
    _check_folder(r, "zones")
    r.cmd("COPY 1:5 zcopy")
    r.cmd("SELECT zcopy")
    r.cmd("MOVE 1:5 zmoved")
    _check_folder(r, "zmoved")
    # delivered mail: the owner's zone at its arrival (winter and summer time in New York)
    winter = dt.datetime(2024, 1, 16, 4, 30, tzinfo=dt.UTC).timestamp()
    summer = dt.datetime(2024, 7, 16, 3, 30, tzinfo=dt.UTC).timestamp()
    _deliver(srv, _message(6, "Mon, 15 Jan 2024 23:30:00 -0500").encode(), winter)
    _deliver(srv, _message(7, "Mon, 15 Jul 2024 23:30:00 -0400").encode(), summer)
    r.cmd("SELECT INBOX")
    assert _internaldates(r, 2) == _expected_fetch(["15-Jan-2024 23:30:00 -0500", "15-Jul-2024 23:30:00 -0400"])
    assert _search(r, "ON 15-Jan-2024") == [1] and _search(r, "ON 16-Jan-2024") == []
    assert _search(r, "ON 15-Jul-2024") == [2] and _search(r, "SINCE 16-Jul-2024") == []
    r.close()

    srv.stop()
    srv.log_path.rename(srv.log_path.with_name("serve-before-restart.log"))  # start() waits for a new "ready"
    srv.start()
    r = Raw(srv)
    _check_folder(r, "zmoved")
    _check_folder(r, "zones")
    r.close()
