"""EXPUNGE and UID EXPUNGE (UIDPLUS): only \\Deleted messages go, UID EXPUNGE only within its set;
the files leave the Maildir."""

from __future__ import annotations

from support.imap import client, fresh_folder, imaps, maildir, module_server, simple_message

imap_server = module_server()


def test_expunge_and_uid_expunge(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "exp")
    for i in range(6):
        c.append(folder, simple_message(f"m{i}"))
    c.logout()
    m = imaps(imap_server)
    m.select(folder)
    m.store("1,2,4,6", "+FLAGS.SILENT", "(\\Deleted)")
    typ, data = m.uid("EXPUNGE", "1:3")  # only UIDs 1 and 2 are both \\Deleted and in the set
    assert typ == "OK"
    assert m.untagged_responses.pop("EXPUNGE", None) == [b"2", b"1"]
    typ, data = m.uid("SEARCH", "ALL")
    assert data == [b"3 4 5 6"]
    assert len(list((maildir(imap_server, folder=folder) / "cur").iterdir())) == 4
    typ, data = m.expunge()
    assert typ == "OK" and data == [b"4", b"2"]  # UID 6 at seq 4, then UID 4 at seq 2
    typ, data = m.uid("SEARCH", "ALL")
    assert data == [b"3 5"]
    assert len(list((maildir(imap_server, folder=folder) / "cur").iterdir())) == 2
    m.logout()
