"""COPY / MOVE (and UID variants) with COPYUID; TRYCREATE for a missing destination."""

from __future__ import annotations

from support.imap import client, fresh_folder, imaps, module_server, simple_message

imap_server = module_server()


def test_copy_keeps_flags_and_reports_copyuid(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    src = fresh_folder(c, "src")
    c.append(src, simple_message("one"), flags=[b"\\Flagged", b"$Work"])
    c.append(src, simple_message("two"))
    c.logout()
    m = imaps(imap_server)
    m.create("copydst")
    m.select(src)
    typ, data = m.copy("1:2", "copydst")
    assert typ == "OK"
    status = m.status("copydst", "(UIDVALIDITY)")[1][0]
    uidvalidity = int(status.split(b"UIDVALIDITY ")[1].rstrip(b")"))
    assert data[0].startswith(b"[COPYUID %d 1:2 1:2]" % uidvalidity)
    m.select("copydst")
    typ, data = m.fetch("1", "(FLAGS BODY.PEEK[])")
    assert b"\\Flagged" in data[0][0] and b"$Work" in data[0][0]
    assert data[0][1] == simple_message("one")
    typ, data = m.copy("1", "nonexistent")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    m.logout()


def test_move_expunges_source_and_reports_copyuid(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    src = fresh_folder(c, "msrc")
    for i in range(4):
        c.append(src, simple_message(f"m{i}"))
    c.create_folder("mdst")
    c.select_folder(src)
    c.move([2, 3], "mdst")
    assert c.search() == [1, 4]
    c.select_folder("mdst")
    assert c.search() == [1, 2]
    assert (
        c.fetch([1], ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])[1][b"BODY[HEADER.FIELDS (SUBJECT)]"]
        == b"Subject: m1\r\n\r\n"
    )
    c.logout()
    m = imaps(imap_server)
    m.select(src)
    typ, data = m._simple_command("MOVE", "1", "mdst")
    assert typ == "OK"
    assert m.untagged_responses.get("OK") and any(b"COPYUID" in x for x in m.untagged_responses["OK"])
    assert m.untagged_responses.get("EXPUNGE") == [b"1"]
    typ, data = m.uid("MOVE", "4", "mdst")
    assert typ == "OK"
    typ, data = m.select(src)
    assert data == [b"0"]
    m.logout()
