"""IDLE and many sessions on one mailbox: IDLE hears a delivery (SMTP or APPEND), a flag change
and an expunge from another session within 1 s; two sessions see each other's expunges with
correct sequence numbers; a file dropped into new/ behind the server's back is found."""

from __future__ import annotations

import time

from support.imap import (
    ALICE,
    Raw,
    client,
    drop,
    fresh_folder,
    module_server,
    simple_message,
    smtp_delivery_server,
)

imap_server = module_server()


def _idle(srv, folder: str) -> Raw:  # type: ignore[no-untyped-def]
    r = Raw(srv, folder)
    r.send("i1 IDLE")
    assert r.line().startswith(b"+")
    return r


def _wait_line(r: Raw, want: bytes) -> tuple[bytes, float]:
    while True:
        line = r.line()
        assert line, "connection closed"
        if want in line:
            return line, time.monotonic()


def test_idle_wakes_on_append_flag_change_and_expunge(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "idle")
    c.append(folder, simple_message("first"))
    r = _idle(imap_server, folder)
    # a new message from another session
    c.append(folder, simple_message("second"))
    t0 = time.monotonic()
    line, t1 = _wait_line(r, b"EXISTS")
    assert line == b"* 2 EXISTS\r\n" and t1 - t0 < 1.0
    # a flag change from another session
    c.select_folder(folder)
    c.add_flags([1], [b"\\Flagged"])
    t0 = time.monotonic()
    line, t1 = _wait_line(r, b"FETCH")
    assert line.startswith(b"* 1 FETCH (FLAGS (\\Flagged)") and t1 - t0 < 1.0
    # an expunge from another session
    c.add_flags([1], [b"\\Deleted"])
    _wait_line(r, b"FETCH")
    c.expunge()
    t0 = time.monotonic()
    line, t1 = _wait_line(r, b"EXPUNGE")
    assert line == b"* 1 EXPUNGE\r\n" and t1 - t0 < 1.0
    r.send("DONE")
    assert _wait_line(r, b"i1 ")[0].startswith(b"i1 OK")
    r.close()
    c.logout()


def test_two_sessions_see_each_others_expunges(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "two")
    for i in range(5):
        c.append(folder, simple_message(f"m{i}"))
    c.logout()
    a, b = Raw(imap_server, folder), Raw(imap_server, folder)
    for r in (a, b):
        assert b"* 5 EXISTS\r\n" in r.selected
    a.cmd("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    out = a.cmd("EXPUNGE")
    assert out[:2] == [b"* 4 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]
    # b may not hear of expunges during FETCH (RFC 3501 §7.4.1): its view still has 5 messages
    out = b.cmd("FETCH 5 (UID)")
    assert not any(b"EXPUNGE" in x for x in out)
    assert out[0] == b"* 5 FETCH (UID 5)\r\n"
    # ...but UID FETCH and NOOP may carry them: highest first, so each number is valid when sent
    out = b.cmd("NOOP")
    assert [x for x in out if b"EXPUNGE" in x] == [b"* 4 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]
    out = b.cmd("FETCH 1:* (UID)")
    assert [x for x in out if x.startswith(b"* ")] == [
        b"* 1 FETCH (UID 1)\r\n",
        b"* 2 FETCH (UID 3)\r\n",
        b"* 3 FETCH (UID 5)\r\n",
    ]
    # a new message arrives while both are selected
    c = client(imap_server)
    c.append(folder, simple_message("new"))
    c.logout()
    assert b"* 4 EXISTS\r\n" in a.cmd("NOOP")
    assert b"* 4 EXISTS\r\n" in b.cmd("NOOP")
    a.close()
    b.close()


def test_file_dropped_behind_our_back_is_found(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    c.select_folder("INBOX")
    before = c.search()
    drop(imap_server, simple_message("dropped", "from outside\r\n"))
    c.noop()
    after = c.search()
    assert len(after) == len(before) + 1
    assert c.search(["SUBJECT", "dropped"]) == [max(after)]
    c.logout()


smtp_server = smtp_delivery_server()


def test_mail_delivered_over_smtp_appears_and_wakes_idle(smtp_server):  # type: ignore[no-untyped-def]
    from support.smtp import smtp25

    srv = smtp_server
    r = _idle(srv, "INBOX")
    msg = simple_message("over smtp", "delivered by SMTP\r\n")
    with smtp25(srv) as s:
        s.sendmail("carol@example.net", [ALICE], msg)
        t0 = time.monotonic()  # the 250 for DATA is back: the message is durably delivered
    line, t1 = _wait_line(r, b"EXISTS")
    assert t1 - t0 < 1.0
    assert line == b"* 1 EXISTS\r\n"
    r.send("DONE")
    _wait_line(r, b"i1 OK")
    out = r.cmd("FETCH 1 (BODY.PEEK[TEXT] BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    joined = b"".join(out)
    assert b"delivered by SMTP\r\n" in joined and b"Subject: over smtp" in joined
    r.close()


def test_concurrent_appends_get_unique_ascending_uids(imap_server):  # type: ignore[no-untyped-def]
    import threading

    c = client(imap_server)
    folder = fresh_folder(c, "conc")
    results: list[int] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            w = client(imap_server)
            for i in range(8):
                resp = w.append(folder, simple_message(f"w{n} m{i}"))
                results.append(int(resp.split(b"APPENDUID ")[1].split(b"]")[0].split()[1]))
            w.logout()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(results) == list(range(1, 41))
    c.select_folder(folder)
    assert c.search() == list(range(1, 41))
    c.logout()


def test_sigterm_says_bye_to_idle_sessions(make_server):  # type: ignore[no-untyped-def]
    from support.imap import start_imap_server

    srv = start_imap_server(make_server)
    r = _idle(srv, "INBOX")
    started = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - started < 10  # did not wait out shutdown_grace for the idle session
    assert r.line() == b"* BYE server shutting down\r\n"
    r.close()
