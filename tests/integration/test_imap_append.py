"""APPEND: APPENDUID, flags and internal date, synchronizing and LITERAL+ literals, TRYCREATE,
UIDs strictly ascending and never reused, and the index rebuilt from the Maildir when lost."""

from __future__ import annotations

import datetime as dt
import socket

from support.imap import (
    ALICE,
    PASSWORD,
    client,
    imaps,
    maildir,
    simple_message,
    start_imap_server,
    tls_client_context,
)


def test_append_uid_flags_date_and_literal_plus(make_server):  # type: ignore[no-untyped-def]
    srv = start_imap_server(make_server)
    m = imaps(srv)
    when = dt.datetime(2025, 12, 24, 18, 30, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    typ, data = m.append("INBOX", "(\\Seen $Gift)", imaplib_date(when), simple_message("gift"))
    assert typ == "OK" and data[0].startswith(b"[APPENDUID ") and data[0].split()[2] == b"1]"
    m.select("INBOX")
    typ, data = m.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert b"\\Seen" in data[0][0] and b"$Gift" in data[0][0]
    assert b'INTERNALDATE "24-Dec-2025 18:30:00 +0100"' in data[0][0]  # as given (RFC 3501 2.3.3)
    assert data[0][1] == simple_message("gift")
    typ, data = m.append("NoSuchFolder", None, None, simple_message("x"))
    assert typ == "NO" and b"TRYCREATE" in data[0]
    m.logout()
    # LITERAL+: no continuation round trip
    sock = tls_client_context().wrap_socket(
        socket.create_connection(("127.0.0.1", srv.port("imap.tls_port")), timeout=30)
    )
    f = sock.makefile("rwb")
    f.readline()
    body = simple_message("plus")
    f.write(f'a LOGIN {ALICE} "{PASSWORD}"\r\nb APPEND INBOX {{{len(body)}+}}\r\n'.encode() + body + b"\r\n")
    f.flush()
    lines = [f.readline(), f.readline()]
    assert lines[0].startswith(b"a OK") and lines[1].startswith(b"b OK [APPENDUID") and lines[1].split()[4] == b"2]"
    sock.close()


def imaplib_date(when: dt.datetime) -> str:
    import imaplib

    return imaplib.Time2Internaldate(when)


def test_uids_never_reused_and_kept_when_the_index_is_lost(make_server):  # type: ignore[no-untyped-def]
    srv = start_imap_server(make_server)
    c = client(srv)
    for i in range(3):
        c.append("INBOX", simple_message(f"m{i}"))
    c.select_folder("INBOX")
    c.add_flags([2], [b"\\Flagged", b"$Todo"])
    c.delete_messages([3])
    c.expunge()
    c.append("INBOX", simple_message("m3"))
    assert c.search() == [1, 2, 4]  # UID 3 is never given again
    old_validity = c.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    c.logout()
    srv.stop()
    index = srv.data_dir / "mail" / ALICE / "index.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        (index.parent / (index.name + suffix)).unlink(missing_ok=True)
    srv.log_path.rename(srv.log_path.with_name("serve-1.log"))
    srv.start()
    c = client(srv)
    info = c.select_folder("INBOX")
    assert info[b"EXISTS"] == 3
    # UIDVALIDITY and UIDs live in the Maildir too: a rebuilt index shows clients nothing new
    assert info[b"UIDVALIDITY"] == old_validity
    assert c.search() == [1, 2, 4]
    assert c.search(["FLAGGED"]) == [2]
    assert set(c.get_flags([2])[2]) == {b"\\Flagged", b"$Todo"}  # from the file name, keyword too (a–z)
    subjects = [
        v[b"BODY[HEADER.FIELDS (SUBJECT)]"]
        for _, v in sorted(c.fetch(c.search(), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]).items())
    ]
    assert subjects == [b"Subject: m0\r\n\r\n", b"Subject: m1\r\n\r\n", b"Subject: m3\r\n\r\n"]
    c.append("INBOX", simple_message("m4"))
    assert c.search() == [1, 2, 4, 5]  # UIDs 3 and 4 were given before the loss: never again
    c.logout()
    assert len(list((maildir(srv) / "cur").iterdir())) == 4
