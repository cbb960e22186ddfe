"""ESEARCH (RFC 4731) and SEARCHRES (RFC 5182) against a real server, answers checked line by
line: ``SEARCH RETURN (MIN MAX COUNT ALL)`` with sequence numbers and (UID SEARCH) UIDs, the
empty result (COUNT 0, no MIN/MAX/ALL), CONDSTORE's MODSEQ in an ESEARCH answer, and ``$``:
saved by RETURN (SAVE), used by FETCH/STORE/SEARCH/UID commands, emptied by an expunge, a new
SELECT or a failed SEARCH. Also a SEARCH with thousands of UID ranges (once an internal error)."""

from __future__ import annotations

import re

from support.imap import Raw, client, module_server, simple_message

imap_server = module_server()

_n = [0]


def _folder(srv) -> str:  # type: ignore[no-untyped-def]
    """Six messages (UIDs 1–6), \\Seen on 2, 3 and 5; then UID 1 is expunged, so the sequence
    numbers 1–5 are the UIDs 2–6 and SEEN matches sequence numbers 1, 2, 4 = UIDs 2, 3, 5."""
    _n[0] += 1
    name = f"es{_n[0]}"
    c = client(srv)
    c.create_folder(name)
    for i in range(1, 7):
        c.append(name, simple_message(f"m{i}"), flags=[b"\\Seen"] if i in (2, 3, 5) else [])
    c.select_folder(name)
    c.delete_messages([1])
    c.expunge()
    c.logout()
    return name


def _untagged(lines: list[bytes]) -> list[bytes]:
    return [x for x in lines if x.startswith(b"* ")]


def test_capability_lists_esearch_and_searchres(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server)
    (cap,) = _untagged(r.cmd("CAPABILITY"))
    assert b" ESEARCH " in cap and b" SEARCHRES" in cap
    r.close()


def test_min_max_count_all(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server, _folder(imap_server))
    out = r.cmd("SEARCH RETURN (MIN MAX COUNT ALL) SEEN")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") MIN 1 MAX 4 COUNT 3 ALL 1:2,4\r\n'.encode()]
    out = r.cmd("UID SEARCH RETURN (MIN MAX COUNT ALL) SEEN")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") UID MIN 2 MAX 5 COUNT 3 ALL 2:3,5\r\n'.encode()]
    out = r.cmd("UID SEARCH RETURN (count) 1:*")  # options are case-insensitive
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") UID COUNT 5\r\n'.encode()]
    out = r.cmd("SEARCH RETURN (MAX) UNSEEN")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") MAX 5\r\n'.encode()]
    # RETURN () is RETURN (ALL)
    out = r.cmd("SEARCH RETURN () SEEN")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") ALL 1:2,4\r\n'.encode()]
    out = r.cmd("SEARCH RETURN (ALL) CHARSET UTF-8 SUBJECT m4")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") ALL 3\r\n'.encode()]
    # the plain SEARCH is unchanged
    assert _untagged(r.cmd("SEARCH SEEN")) == [b"* SEARCH 1 2 4\r\n"]
    r.close()


def test_nothing_found(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server, _folder(imap_server))
    out = r.cmd("SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nowhere")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") COUNT 0\r\n'.encode()]
    out = r.cmd("UID SEARCH RETURN (MIN ALL) SUBJECT nowhere")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") UID\r\n'.encode()]
    out = r.cmd("SEARCH RETURN (COUNT ALL) MODSEQ 1000000")  # turns CONDSTORE on (RFC 7162 3.1)
    assert _untagged(out)[1:] == [f'* ESEARCH (TAG "{r.tag}") COUNT 0\r\n'.encode()]
    assert _untagged(out)[0].startswith(b"* OK [HIGHESTMODSEQ ")
    r.close()


def test_bad_return_options(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server, _folder(imap_server))
    for line in ("SEARCH RETURN (PARTIAL) ALL", "SEARCH RETURN (MIN", "SEARCH RETURN MIN ALL", "SEARCH RETURN (MIN)"):
        out = r.cmd(line, ok=False)
        assert out[-1].split()[1] == b"BAD", (line, out)
        assert _untagged(out) == []
    r.close()


def _modseqs(r: Raw) -> dict[int, int]:
    out = {}
    for x in r.cmd("UID FETCH 1:* (MODSEQ)"):
        m = re.match(rb"\* \d+ FETCH \(UID (\d+) MODSEQ \((\d+)\)\)", x)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


def test_modseq_in_esearch(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server, _folder(imap_server))
    r.cmd("UID STORE 3 +FLAGS (\\Flagged)")
    ms = _modseqs(r)
    assert ms[3] == max(ms.values())
    # ALL/COUNT: the highest MODSEQ of all matches; MIN/MAX alone: of those messages only
    out = r.cmd("UID SEARCH RETURN (ALL) MODSEQ 1 SEEN")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") UID ALL 2:3,5 MODSEQ {ms[3]}\r\n'.encode()]
    out = r.cmd("UID SEARCH RETURN (MIN) MODSEQ 1 SEEN")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") UID MIN 2 MODSEQ {ms[2]}\r\n'.encode()]
    out = r.cmd("SEARCH RETURN (MAX) MODSEQ 1 SEEN")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") MAX 4 MODSEQ {ms[5]}\r\n'.encode()]
    r.close()


def _fetched_uids(lines: list[bytes]) -> list[int]:
    return [int(m.group(1)) for x in lines if (m := re.match(rb"\* \d+ FETCH \(.*UID (\d+)", x))]


def test_save_and_use_dollar(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder(imap_server)
    r = Raw(imap_server, folder)
    assert _fetched_uids(r.cmd("FETCH $ (UID)")) == []  # nothing saved yet: $ is empty
    out = r.cmd("SEARCH RETURN (SAVE) SEEN")
    assert _untagged(out) == []  # SAVE alone answers nothing
    assert _fetched_uids(r.cmd("FETCH $ (UID)")) == [2, 3, 5]
    assert _fetched_uids(r.cmd("UID FETCH $ (FLAGS)")) == [2, 3, 5]
    # $ inside search keys, in UID and non-UID form
    assert _untagged(r.cmd("UID SEARCH UID $ SUBJECT m3")) == [b"* SEARCH 3\r\n"]
    assert _untagged(r.cmd("SEARCH $")) == [b"* SEARCH 1 2 4\r\n"]
    assert _untagged(r.cmd("SEARCH NOT $")) == [b"* SEARCH 3 5\r\n"]
    # SAVE with other options: the ESEARCH answer comes too; MIN alone saves just the lowest
    out = r.cmd("UID SEARCH RETURN (SAVE MIN) SEEN")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") UID MIN 2\r\n'.encode()]
    assert _fetched_uids(r.cmd("UID FETCH $ (UID)")) == [2]
    out = r.cmd("SEARCH RETURN (SAVE COUNT) SEEN")  # COUNT: all of them are saved
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") COUNT 3\r\n'.encode()]
    # a search may use $ and save a new one
    r.cmd("SEARCH RETURN (SAVE) $ SUBJECT m5")
    assert _fetched_uids(r.cmd("FETCH $ (UID)")) == [5]
    r.cmd("SEARCH RETURN (SAVE) SEEN")
    out = r.cmd("STORE $ +FLAGS.SILENT (\\Flagged)")
    assert _untagged(out) == []
    assert _untagged(r.cmd("UID SEARCH FLAGGED")) == [b"* SEARCH 2 3 5\r\n"]
    # COPY / MOVE take $ as well
    r.cmd(f"CREATE {folder}x")
    out = r.cmd(f"COPY $ {folder}x")
    assert b"[COPYUID " in out[-1] and b" 2:3,5 1:3]" in out[-1], out
    # expunged messages leave $
    r.cmd("UID STORE 3 +FLAGS.SILENT (\\Deleted)")
    r.cmd("UID EXPUNGE $")
    assert _fetched_uids(r.cmd("FETCH $ (UID)")) == [2, 5]
    # a failed SEARCH … RETURN (SAVE) empties it
    out = r.cmd("SEARCH RETURN (SAVE) CHARSET KOI8-R SUBJECT x", ok=False)
    assert out[-1].split()[1] == b"NO"
    assert _fetched_uids(r.cmd("FETCH $ (UID)")) == []
    # and so does selecting a folder
    r.cmd("SEARCH RETURN (SAVE) ALL")
    r.cmd(f"SELECT {folder}")
    assert _fetched_uids(r.cmd("FETCH $ (UID)")) == []
    r.close()


def test_uid_search_with_thousands_of_ranges(imap_server):  # type: ignore[no-untyped-def]
    """A UID set of 3,000 ranges once failed with an internal error (SQLite's expression depth
    limit of 1,000); now it is one query like any other."""
    r = Raw(imap_server, _folder(imap_server))
    uid_set = ",".join(str(n) for n in range(1, 6000, 2))  # 1,3,5,…,5999
    assert _untagged(r.cmd(f"UID SEARCH UID {uid_set}")) == [b"* SEARCH 3 5\r\n"]
    spans = ",".join(f"{n}:{n + 1}" for n in range(4, 12000, 4))  # 4:5,8:9,…
    out = r.cmd(f"UID SEARCH RETURN (ALL) UID 2,{spans}")
    assert _untagged(out) == [f'* ESEARCH (TAG "{r.tag}") UID ALL 2,4:5\r\n'.encode()]
    r.close()
