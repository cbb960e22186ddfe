"""LIST-STATUS (RFC 5819): ``LIST … RETURN (STATUS (…))`` answers each LIST line with the
folder's STATUS line right after it, identical to what a STATUS command says; it combines with
the other return options (SPECIAL-USE, CHILDREN, SUBSCRIBED) and with selection options; names
are modified UTF-7 in both lines; a bad STATUS item is a BAD with nothing listed."""

from __future__ import annotations

import re

from support.imap import Raw, client, module_server, simple_message

imap_server = module_server()

ITEMS = "MESSAGES UNSEEN UIDNEXT UIDVALIDITY HIGHESTMODSEQ"


def _untagged(lines: list[bytes]) -> list[bytes]:
    return [x for x in lines if x.startswith(b"* ")]


def _setup(srv) -> None:  # type: ignore[no-untyped-def]
    c = client(srv)
    c.create_folder("ls")
    c.create_folder("ls/kid")
    c.create_folder("ls/Grüße")
    for i in range(3):
        c.append("ls", simple_message(f"m{i}"), flags=[b"\\Seen"] if i == 0 else [])
    c.append("ls/Grüße", simple_message("g"))
    c.subscribe_folder("ls")  # CREATE does not subscribe: ls/kid stays unsubscribed
    c.subscribe_folder("ls/Grüße")
    c.logout()


def test_capability_lists_list_status(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server)
    (cap,) = _untagged(r.cmd("CAPABILITY"))
    assert b" LIST-STATUS" in cap
    r.close()


def test_status_follows_each_list_line(imap_server):  # type: ignore[no-untyped-def]
    _setup(imap_server)
    r = Raw(imap_server)
    lines = _untagged(r.cmd(f'LIST "" "ls*" RETURN (STATUS ({ITEMS}))'))
    assert [x.split(b'"/" ')[1] for x in lines[0::2]] == [b'"ls"\r\n', b'"ls/Gr&APwA3w-e"\r\n', b'"ls/kid"\r\n']
    assert lines[0] == b'* LIST (\\HasChildren) "/" "ls"\r\n'
    # every LIST line is followed by exactly what STATUS says about that folder
    for listed, status in zip(lines[0::2], lines[1::2], strict=True):
        assert listed.startswith(b"* LIST ")
        name = listed.split(b'"/" ')[1].strip()
        assert _untagged(r.cmd(f"STATUS {name.decode()} ({ITEMS})")) == [status]
    m = re.fullmatch(
        rb'\* STATUS "ls" \(MESSAGES 3 UNSEEN 2 UIDNEXT 4 UIDVALIDITY (\d+) HIGHESTMODSEQ (\d+)\)\r\n', lines[1]
    )
    assert m, lines[1]
    assert re.fullmatch(rb'\* STATUS "ls/Gr&APwA3w-e" \(MESSAGES 1 UNSEEN 1 UIDNEXT 2 .*\)\r\n', lines[3])
    assert re.fullmatch(rb'\* STATUS "ls/kid" \(MESSAGES 0 UNSEEN 0 UIDNEXT 1 .*\)\r\n', lines[5])
    # a plain LIST is unchanged
    assert len(_untagged(r.cmd('LIST "" "ls*"'))) == 3
    r.close()


def test_combined_with_other_options(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server)
    lines = _untagged(r.cmd('LIST "" "%" RETURN (SPECIAL-USE CHILDREN SUBSCRIBED STATUS (MESSAGES))'))
    listed = lines[0::2]
    assert all(x.startswith(b"* LIST ") for x in listed)
    assert all(re.fullmatch(rb'\* STATUS "[^"]+" \(MESSAGES \d+\)\r\n', x) for x in lines[1::2]), lines
    assert b'* LIST (\\HasNoChildren \\Sent \\Subscribed) "/" "Sent"\r\n' in listed
    assert b'* LIST (\\HasChildren \\Subscribed) "/" "ls"\r\n' in listed
    i = listed.index(b'* LIST (\\HasChildren \\Subscribed) "/" "ls"\r\n')
    assert lines[2 * i + 1] == b'* STATUS "ls" (MESSAGES 3)\r\n'
    # STATUS first, other options after
    lines = _untagged(r.cmd('LIST "" "ls/%" RETURN (STATUS (UNSEEN MESSAGES) SUBSCRIBED)'))
    assert lines == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "ls/Gr&APwA3w-e"\r\n',
        b'* STATUS "ls/Gr&APwA3w-e" (UNSEEN 1 MESSAGES 1)\r\n',
        b'* LIST (\\HasNoChildren) "/" "ls/kid"\r\n',
        b'* STATUS "ls/kid" (UNSEEN 0 MESSAGES 0)\r\n',
    ]
    # with selection options: only the folders selected get a STATUS
    lines = _untagged(r.cmd('LIST (SUBSCRIBED) "" "ls/*" RETURN (STATUS (MESSAGES))'))
    assert lines == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "ls/Gr&APwA3w-e"\r\n',
        b'* STATUS "ls/Gr&APwA3w-e" (MESSAGES 1)\r\n',
    ]
    lines = _untagged(r.cmd('LIST (SPECIAL-USE) "" "*" RETURN (STATUS (MESSAGES))'))
    assert [x.split(b'"/" ')[1] for x in lines[0::2]] == [
        b'"Archive"\r\n',
        b'"Drafts"\r\n',
        b'"Junk"\r\n',
        b'"Sent"\r\n',
        b'"Trash"\r\n',
    ]
    assert lines[1::2] == [
        f'* STATUS "{n}" (MESSAGES 0)\r\n'.encode() for n in ("Archive", "Drafts", "Junk", "Sent", "Trash")
    ]
    r.close()


def test_selected_folder_and_edge_cases(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server, "ls")
    # the selected folder gets its STATUS like any other (with this session's \Recent)
    lines = _untagged(r.cmd('LIST "" "ls" RETURN (STATUS (MESSAGES RECENT))'))
    assert lines == [b'* LIST (\\HasChildren) "/" "ls"\r\n', b'* STATUS "ls" (MESSAGES 3 RECENT 3)\r\n']
    # the empty pattern answers the delimiter only
    assert _untagged(r.cmd('LIST "" "" RETURN (STATUS (MESSAGES))')) == [b'* LIST (\\Noselect) "/" ""\r\n']
    # nothing matches: nothing at all
    assert _untagged(r.cmd('LIST "" "nosuch*" RETURN (STATUS (MESSAGES))')) == []
    for bad in (
        'LIST "" "*" RETURN (STATUS (BOGUS))',
        'LIST "" "*" RETURN (STATUS MESSAGES)',
        'LIST "" "*" RETURN (STATUS)',
        'LSUB "" "*" RETURN (STATUS (MESSAGES))',
    ):
        out = r.cmd(bad, ok=False)
        assert out[-1].split()[1] == b"BAD", (bad, out)
        assert _untagged(out) == [], bad
    r.close()
