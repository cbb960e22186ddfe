"""Folders: LIST (with SPECIAL-USE, CHILDREN, RETURN/selection options), LSUB, CREATE, RENAME,
DELETE, SUBSCRIBE, STATUS, NAMESPACE, ID, modified UTF-7 names."""

from __future__ import annotations

import imaplib

from support.imap import Raw, client, imaps, maildir, module_server, simple_message

imap_server = module_server()


def test_special_use_folders_exist_for_every_user(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folders = {name: flags for flags, _delim, name in c.list_folders()}
    assert folders["INBOX"] == (b"\\HasNoChildren",)
    for name, flag in (
        ("Sent", b"\\Sent"),
        ("Drafts", b"\\Drafts"),
        ("Trash", b"\\Trash"),
        ("Junk", b"\\Junk"),
        ("Archive", b"\\Archive"),
    ):
        assert flag in folders[name], name
    assert c.find_special_folder(b"\\Sent") == "Sent"
    c.logout()
    m = imaps(imap_server)
    typ, data = m._simple_command("LIST", "(SPECIAL-USE)", '""', '"*"')
    typ, data = m._untagged_response(typ, data, "LIST")
    assert len(data) == 5 and all(b"\\HasNoChildren" in d for d in data)
    typ, data = m._simple_command("LIST", '""', '"%"', "RETURN", "(SUBSCRIBED SPECIAL-USE)")
    typ, data = m._untagged_response(typ, data, "LIST")
    assert any(b"\\Subscribed" in d and b"\\Trash" in d for d in data)
    typ, data = m.list('""', '""')
    assert data == [b'(\\Noselect) "/" ""']
    m.logout()


def test_create_rename_delete_with_children_and_utf7(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    c.create_folder("Projekte/Entwürfe")
    names = [n for _f, _d, n in c.list_folders()]
    assert "Projekte" in names and "Projekte/Entwürfe" in names
    flags = {n: f for f, _d, n in c.list_folders()}
    assert b"\\HasChildren" in flags["Projekte"]
    assert (maildir(imap_server, folder="Projekte.Entwürfe") / "cur").is_dir()
    c.select_folder("Projekte/Entwürfe")
    c.append("Projekte/Entwürfe", simple_message("draft"))
    c.unselect_folder()
    c.rename_folder("Projekte", "Archiv2026")
    names = [n for _f, _d, n in c.list_folders()]
    assert "Archiv2026/Entwürfe" in names and "Projekte" not in names
    c.select_folder("Archiv2026/Entwürfe")
    assert c.search() == [1]
    c.unselect_folder()
    m = imaps(imap_server)
    typ, data = m.list('""', "Archiv2026/%")
    assert data == [b'(\\HasNoChildren) "/" "Archiv2026/Entw&APw-rfe"']
    typ, data = m.delete("Archiv2026")
    assert typ == "NO"  # has children
    assert m.delete('"Archiv2026/Entw&APw-rfe"')[0] == "OK"
    assert m.delete("Archiv2026")[0] == "OK"
    assert m.delete("Trash")[0] == "NO"
    assert m.delete("INBOX")[0] == "NO"
    assert m.create("Sent")[0] == "NO"
    typ, data = m.create('"bad.name"')
    assert typ == "NO" and b"CANNOT" in data[0]
    m.logout()
    c.logout()


def test_subscribe_lsub_status_namespace_id(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    c.create_folder("Lists")
    c.append("Lists", simple_message("one"), flags=[b"\\Seen"])
    c.append("Lists", simple_message("two"))
    assert "Lists" not in [n for _f, _d, n in c.list_sub_folders()]  # CREATE does not subscribe
    c.subscribe_folder("Lists")
    assert "Lists" in [n for _f, _d, n in c.list_sub_folders()]
    c.unsubscribe_folder("Lists")
    assert "Lists" not in [n for _f, _d, n in c.list_sub_folders()]
    st = c.folder_status("Lists", [b"MESSAGES", b"UNSEEN", b"UIDNEXT", b"UIDVALIDITY", b"HIGHESTMODSEQ", b"RECENT"])
    assert st[b"MESSAGES"] == 2 and st[b"UNSEEN"] == 1 and st[b"UIDNEXT"] == 3
    assert st[b"RECENT"] == 2  # no session has selected Lists yet: both are recent for the next
    assert st[b"UIDVALIDITY"] > 0 and st[b"HIGHESTMODSEQ"] > 1
    ns = c.namespace()
    assert ns.personal == (("", "/"),) and ns.other is None and ns.shared is None
    ident = c.id_({"name": "pytest"})
    assert ident[0][:2] == (b"name", b"GK")
    assert b"CONDSTORE" in c.capabilities() and b"MOVE" in c.capabilities()
    c.logout()


def test_select_examine_unselect_close(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    c.create_folder("Sel")
    c.append("Sel", simple_message("one"), flags=[b"\\Deleted"])
    c.append("Sel", simple_message("two"))
    info = c.select_folder("Sel")
    assert info[b"EXISTS"] == 2 and info[b"UIDNEXT"] == 3 and info[b"READ-WRITE"]
    assert b"\\Deleted" in info[b"PERMANENTFLAGS"]
    info = c.select_folder("Sel", readonly=True)
    assert info[b"READ-ONLY"]
    c.close_folder()  # read-only: no expunge
    info = c.select_folder("Sel")
    assert info[b"EXISTS"] == 2
    c.unselect_folder()  # UNSELECT: no expunge either
    info = c.select_folder("Sel")
    assert info[b"EXISTS"] == 2
    c.close_folder()  # CLOSE on a read-write folder expunges \\Deleted silently
    assert c.select_folder("Sel")[b"EXISTS"] == 1
    try:
        c.select_folder("Nope")
        raise AssertionError("selected a missing folder")
    except imaplib.IMAP4.error:
        pass
    c.logout()


def _untagged(lines: list[bytes]) -> list[bytes]:
    return [x for x in lines if x.startswith(b"* ")]


def test_subscriptions_are_names_that_outlive_their_folders(imap_server):  # type: ignore[no-untyped-def]
    """RFC 3501 6.3.6-6.3.9 as imaptest's ``subscribe`` test and Dovecot see it: CREATE does not
    subscribe, DELETE does not unsubscribe, UNSUBSCRIBE of a subscribed name without a folder is
    OK, and LSUB "%" shows the unsubscribed parents of subscribed folders as \\Noselect."""
    r = Raw(imap_server)
    lsub = _untagged(r.cmd('LSUB "" "*"'))
    for name in (b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"):
        assert any(x.endswith(b' "' + name + b'"\r\n') for x in lsub), (name, lsub)  # defaults subscribed
    r.cmd("CREATE subs1")
    assert _untagged(r.cmd('LSUB "" subs1')) == []
    assert _untagged(r.cmd('LIST "" subs1 RETURN (SUBSCRIBED)')) == [b'* LIST (\\HasNoChildren) "/" "subs1"\r\n']
    r.cmd("SUBSCRIBE subs1")
    assert _untagged(r.cmd('LSUB "" subs1')) == [b'* LSUB (\\HasNoChildren) "/" "subs1"\r\n']
    r.cmd("DELETE subs1")
    assert _untagged(r.cmd('LSUB "" subs1')) == [b'* LSUB (\\Noselect) "/" "subs1"\r\n']
    assert _untagged(r.cmd('LIST "" subs1')) == []
    assert _untagged(r.cmd('LIST (SUBSCRIBED) "" subs1')) == [b'* LIST (\\NonExistent \\Subscribed) "/" "subs1"\r\n']
    r.cmd("CREATE subs1")  # made again: still subscribed
    assert _untagged(r.cmd('LSUB "" subs1')) == [b'* LSUB (\\HasNoChildren) "/" "subs1"\r\n']
    r.cmd("DELETE subs1")
    r.cmd("UNSUBSCRIBE subs1")  # no folder, but a subscribed name
    assert _untagged(r.cmd('LSUB "" subs1')) == []
    out = r.cmd("UNSUBSCRIBE subs1", ok=False)
    assert out[-1].split()[1:3] == [b"NO", b"[NONEXISTENT]"], out
    out = r.cmd("SUBSCRIBE nosuchfolder", ok=False)
    assert out[-1].split()[1:3] == [b"NO", b"[NONEXISTENT]"], out
    # imaptest "subscribe": unsubscribed parents of subscribed folders come back as \Noselect
    for name in ("subs2/", "subs2/test", "subs2/test2/", "subs2/test3/", "subs2/test2/test", "subs2/test3/test3"):
        r.cmd(f"CREATE {name}")
    for name in ("subs2/test", "subs2/test2/test", "subs2/test3/test3"):
        r.cmd(f"SUBSCRIBE {name}")
    assert _untagged(r.cmd('LSUB "" subs2/%')) == [
        b'* LSUB (\\HasNoChildren) "/" "subs2/test"\r\n',
        b'* LSUB (\\Noselect) "/" "subs2/test2"\r\n',
        b'* LSUB (\\Noselect) "/" "subs2/test3"\r\n',
    ]
    assert _untagged(r.cmd('LSUB "" *test')) == [
        b'* LSUB (\\HasNoChildren) "/" "subs2/test"\r\n',
        b'* LSUB (\\HasNoChildren) "/" "subs2/test2/test"\r\n',
    ]
    r.cmd("UNSUBSCRIBE subs2/test2/test")
    assert _untagged(r.cmd('LSUB "" subs2/*')) == [
        b'* LSUB (\\HasNoChildren) "/" "subs2/test"\r\n',
        b'* LSUB (\\HasNoChildren) "/" "subs2/test3/test3"\r\n',
    ]
    # RENAME carries the subscription along
    r.cmd("RENAME subs2/test3 subs3")
    assert _untagged(r.cmd('LSUB "" subs3*')) == [b'* LSUB (\\HasNoChildren) "/" "subs3/test3"\r\n']
    r.close()


def test_invalid_modified_utf7_name_is_no_not_bad(imap_server):  # type: ignore[no-untyped-def]
    """A well-formed command whose mailbox name is not valid modified UTF-7 is refused with NO
    (as Dovecot does, and imaptest expects for CREATE and SELECT), and the session goes on."""
    r = Raw(imap_server)
    for name in ('"&Jjo!"', '"&ZeVnLIqe"', '"&AGE-"', '"a&-b&"'):  # bad base64, unterminated, non-canonical
        for command in ("CREATE", "SELECT", "EXAMINE", "STATUS", "DELETE", "SUBSCRIBE"):
            line = f"{command} {name}" + (" (MESSAGES)" if command == "STATUS" else "")
            out = r.cmd(line, ok=False)
            assert out[-1].split()[1:3] == [b"NO", b"[CANNOT]"], (line, out)
    # 8-bit bytes that are not UTF-8 either
    r.n += 1
    r.f.write(b"r%d CREATE {4+}\r\nx\xff\xfey\r\n" % r.n)
    r.f.flush()
    assert r.line().split()[1:3] == [b"NO", b"[CANNOT]"]
    # a SELECT refused for its name leaves no folder selected, as any failed SELECT (RFC 3501 6.3.1)
    r.cmd("SELECT INBOX")
    out = r.cmd('SELECT "&Jjo!"', ok=False)
    assert out[-1].split()[1:3] == [b"NO", b"[CANNOT]"]
    assert r.cmd("CHECK", ok=False)[-1].split()[1] == b"BAD"  # CHECK needs a selected folder
    r.cmd('CREATE "Gr&APw-n"')  # a valid name still works
    assert _untagged(r.cmd('LIST "" "Gr&APw-n"')) == [b'* LIST (\\HasNoChildren) "/" "Gr&APw-n"\r\n']
    r.close()
