"""Per-user authorization: no folder name, sequence set or command reaches another user's mail."""

from __future__ import annotations

import imaplib

import pytest
from support.imap import BOB, client, imaps, maildir, module_server, simple_message

imap_server = module_server()


def _refused(fn, *args) -> bool:  # type: ignore[no-untyped-def]
    try:
        typ, _ = fn(*args)
    except imaplib.IMAP4.error:  # BAD: not even a valid name
        return True
    return typ == "NO"


def test_user_cannot_select_or_fetch_another_users_mail(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server, BOB)
    c.append("INBOX", simple_message("secret of bob", "bob's secret body\r\n"))
    c.logout()
    m = imaps(imap_server)  # alice
    for name in (
        "../bob@example.org/Maildir",
        "../../mail/bob@example.org",
        "bob@example.org",
        "/etc",
        ".Sent",
        "INBOX/../../bob@example.org",
        "&AC4ALg-/bob@example.org",
    ):
        assert _refused(m.select, f'"{name}"'), name
        assert _refused(m.status, f'"{name}"', "(MESSAGES)"), name
        assert _refused(m.create, f'"{name}"'), name
    m.select("INBOX")
    typ, data = m.search(None, "TEXT", '"secret"')
    assert data == [b""]
    with pytest.raises(imaplib.IMAP4.error):
        m.fetch("1", "(BODY[])")  # alice's INBOX is empty: there is no message 1
    typ, data = m.uid("FETCH", "1:*", "(BODY[])")
    assert data == [None]
    typ, data = m.list('""', "*")
    assert not any(b"bob" in line for line in data)
    m.logout()
    # and nothing was created outside alice's Maildir
    assert sorted(p.name for p in (imap_server.data_dir / "mail").iterdir() if p.is_dir()) == [
        "alice@example.org",
        "bob@example.org",
    ]
    assert len(list((maildir(imap_server, BOB) / "cur").iterdir())) == 1


def test_copy_and_move_cannot_target_another_user(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    c.append("INBOX", simple_message("alice's"))
    c.logout()
    m = imaps(imap_server)
    m.select("INBOX")
    for dest in ("../bob@example.org/Maildir", "../../bob@example.org/Maildir/.Sent"):
        assert _refused(m.copy, "1", f'"{dest}"')
    assert _refused(m.append, '"../bob@example.org/Maildir"', None, None, simple_message("x"))
    m.logout()
    assert len(list((maildir(imap_server, BOB) / "cur").iterdir())) == 1
