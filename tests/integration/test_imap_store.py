"""STORE: flags survive reconnects and a server restart, show in the Maildir file name
(``:2,FS``), CONDSTORE's UNCHANGEDSINCE / MODIFIED and CHANGEDSINCE."""

from __future__ import annotations

import imaplib

import pytest
from test_imap_support import client, fresh_folder, imaps, maildir, module_server, simple_message

imap_server = module_server()


def _names(srv, folder: str) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(p.name for p in (maildir(srv, folder=folder) / "cur").iterdir())


def test_flags_survive_reconnect_and_show_in_file_names(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "flags")
    c.append(folder, simple_message("one"))
    c.append(folder, simple_message("two"))
    c.select_folder(folder)
    c.add_flags([1], [b"\\Seen", b"\\Flagged", b"$Label1"])
    c.add_flags([2], [b"\\Answered", b"\\Draft"])
    c.remove_flags([1], [b"\\Flagged"])
    c.logout()
    names = _names(imap_server, folder)
    assert names[0].endswith(":2,Sa") and names[1].endswith(":2,DR"), names  # keywords as a–z
    assert (maildir(imap_server, folder=folder) / "dovecot-keywords").read_text() == "0 $Label1\n"
    c = client(imap_server)
    c.select_folder(folder)
    flags = c.get_flags([1, 2])
    assert set(flags[1]) == {b"\\Seen", b"$Label1"}
    assert set(flags[2]) == {b"\\Answered", b"\\Draft"}
    c.set_flags([2], [b"\\Deleted"])
    assert c.get_flags([2])[2] == (b"\\Deleted",)
    c.logout()
    assert _names(imap_server, folder)[1].endswith(":2,T")


def test_flags_changed_in_the_file_name_behind_our_back_are_taken_over(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "behind")
    c.append(folder, simple_message("one"))
    path = maildir(imap_server, folder=folder) / "cur" / _names(imap_server, folder)[0]
    path.rename(path.with_name(path.name.split(":2,")[0] + ":2,FS"))
    c.select_folder(folder)
    c.noop()
    assert set(c.get_flags([1])[1]) == {b"\\Flagged", b"\\Seen"}
    c.logout()


def test_store_responses_silent_and_readonly(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "silent")
    c.append(folder, simple_message("one"))
    c.logout()
    m = imaps(imap_server)
    m.select(folder)
    typ, data = m.store("1", "+FLAGS", "(\\Seen)")
    assert typ == "OK" and data == [b"1 (FLAGS (\\Seen))"]
    typ, data = m.store("1", "+FLAGS.SILENT", "(\\Flagged)")
    assert typ == "OK" and data == [None]
    with pytest.raises(imaplib.IMAP4.error, match="STORE"):
        m.store("1", "+FLAGS", "(\\Recent)")
    with pytest.raises(imaplib.IMAP4.error, match="STORE"):
        m.store("1", "BOGUS", "(\\Seen)")
    m.select(folder, readonly=True)
    typ, data = m.store("1", "-FLAGS", "(\\Seen)")
    assert typ == "NO"
    m.logout()


def test_condstore_unchangedsince_and_changedsince(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "cond")
    c.append(folder, simple_message("one"))
    c.append(folder, simple_message("two"))
    c.logout()
    m = imaps(imap_server)
    typ, data = m._simple_command("ENABLE", "CONDSTORE")
    assert typ == "OK"
    typ, data = m.select(folder)
    assert typ == "OK"
    hms = int(m.untagged_responses["HIGHESTMODSEQ"][0])
    typ, data = m.fetch("1:2", "(MODSEQ)")
    modseqs = [int(d.split(b"MODSEQ (")[1].split(b")")[0]) for d in data]
    assert modseqs[1] > modseqs[0]
    typ, data = m.store("1:2", f"(UNCHANGEDSINCE {modseqs[0]}) +FLAGS", "(\\Seen)")
    assert typ == "OK"
    assert m.response("MODIFIED")[1][0] == b"2"  # message 2 changed after modseqs[0]: not stored
    typ, data = m.store("1", "(UNCHANGEDSINCE 1) +FLAGS", "(\\Flagged)")
    assert typ == "OK"
    assert m.response("MODIFIED")[1][0] == b"1"
    typ, data = m.fetch("1:*", f"(FLAGS) (CHANGEDSINCE {hms})")
    assert len(data) == 1 and data[0].startswith(b"1 (") and b"\\Seen" in data[0] and b"MODSEQ" in data[0]
    assert b"\\Flagged" not in data[0]
    m.logout()


def test_flags_survive_a_kill_9(make_server):  # type: ignore[no-untyped-def]
    from test_imap_support import start_imap_server

    srv = start_imap_server(make_server)
    c = client(srv)
    c.append("INBOX", simple_message("durable"))
    c.select_folder("INBOX")
    c.add_flags([1], [b"\\Flagged", b"work"])
    srv.kill9()
    srv.log_path.rename(srv.log_path.with_name("serve-before-kill.log"))  # start() waits for a new "ready"
    srv.start()
    c = client(srv)
    c.select_folder("INBOX")
    assert set(c.get_flags([1])[1]) == {b"\\Flagged", b"work"}
    c.logout()
