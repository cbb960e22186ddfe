"""The MailboxStore API the webmail uses (no server): paging, delete to Trash, search, sync with
files added or removed behind its back, and folder-name checks that keep a user in their tree."""

from __future__ import annotations

import os

import pytest

from gk import events as bus
from gk.mail.mailbox import FolderNotFound, MailboxError, MailboxStore, maildir
from gk.mail.mailbox.reading import part_text


def _msg(i: int, body: str = "hello") -> bytes:
    return f"From: Ann <ann@example.com>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= {i}\r\n\r\n{body} {i}\r\n".encode()


def test_webmail_api(tmp_path):  # type: ignore[no-untyped-def]
    store = MailboxStore(tmp_path / "mail")
    mb = store.user("Alice@Example.org")
    events: list[bus.Event] = []
    bus.subscribe("alice@example.org", events.append)
    try:
        for i in range(7):
            mb.append("INBOX", _msg(i))
        assert [f.name for f in mb.folders()] == ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
        inbox = mb.folder("INBOX")
        assert inbox.exists == 7 and inbox.unseen == 7 and inbox.uidnext == 8
        page = mb.messages("INBOX", offset=2, limit=3)
        assert [m.uid for m in page] == [5, 4, 3]
        assert page[0].subject == "Grüße 4" and page[0].sender == "Ann <ann@example.com>"
        mb.set_flags("INBOX", [5], ["\\Seen"])
        assert mb.info("INBOX", 5).seen and mb.folder("INBOX").unseen == 6
        mb.delete_messages("INBOX", [1, 2])
        assert list(mb.uids("INBOX")) == [3, 4, 5, 6, 7] and list(mb.uids("Trash")) == [1, 2]
        mb.delete_messages("Trash", [1])
        assert list(mb.uids("Trash")) == [2]
        assert mb.search_text("INBOX", "hello 5") == [6]
        top = mb.structure("INBOX", 6)
        with mb.open_message("INBOX", 6) as fh:
            assert part_text(fh, top).strip() == "hello 5"
        assert bus.MessagesAdded("alice@example.org", "INBOX", (7,), 8) in events
        assert bus.FlagsChanged("alice@example.org", "INBOX", ((5, ("\\Seen",), 9),), 9) in events
        moved = [e for e in events if e.folder == "Trash" and not isinstance(e, bus.FlagsChanged)]
        assert [type(e).__name__ for e in moved] == ["MessagesAdded", "Expunged"]
        assert moved[0].uids == (1, 2) and moved[1].uids == (1,)  # type: ignore[union-attr]
    finally:
        bus.unsubscribe("alice@example.org", events.append)


def test_sync_picks_up_changes_behind_its_back(tmp_path):  # type: ignore[no-untyped-def]
    root = tmp_path / "mail"
    store = MailboxStore(root)
    mb = store.user("bob@example.org")
    d = maildir.folder_path(root, "bob@example.org", "INBOX")
    maildir.deliver(d, [_msg(1)])
    maildir.deliver(d, [_msg(2)])
    mb.sync("INBOX")
    assert list(mb.uids("INBOX")) == [1, 2]
    victim = next(p for p in (d / "cur").iterdir() if b" 1\r\n" in p.read_bytes())
    os.unlink(victim)
    maildir.deliver(d, [_msg(3)])
    mb.sync("INBOX")
    assert list(mb.uids("INBOX")) == [2, 3]  # UID 1 gone, never reused


def test_folder_names_cannot_escape(tmp_path):  # type: ignore[no-untyped-def]
    mb = MailboxStore(tmp_path / "mail").user("carol@example.org")
    for bad in ("../x", "a/../../b", "..", "a.b", "/abs", "a//b", "x\x00y", "*", "a\\b"):
        with pytest.raises(MailboxError):
            mb.create_folder(bad)
    with pytest.raises(FolderNotFound):
        mb.folder("Nope")
    with pytest.raises(MailboxError):
        MailboxStore(tmp_path / "mail").user("../etc")
    assert sorted(p.name for p in (tmp_path / "mail").iterdir()) == ["carol@example.org"]


def test_infos_of_runs_and_of_scattered_uids(tmp_path):  # type: ignore[no-untyped-def]
    """A run of UIDs is read as one range, scattered ones by name: either way the messages asked
    for and no other, the ENVELOPE left out when not asked for."""
    store = MailboxStore(tmp_path / "mail")
    mb = store.user("alice@example.org")
    for i in range(12):
        mb.append("INBOX", _msg(i))
    mb.set_flags("INBOX", [3, 4, 9], ["\\Deleted"])
    mb.expunge("INBOX")
    for uids, want in [
        (range(1, 13), [1, 2, 5, 6, 7, 8, 10, 11, 12]),  # a run, with expunged UIDs in it
        ([5, 6, 7], [5, 6, 7]),
        ([2, 5, 6, 8], [2, 5, 6, 8]),
        ([12, 2, 3], [2, 12]),  # not a run: 3..11 must not come back
        ([1, 1, 2], [1, 2]),
        (range(11, 20), [11, 12]),
    ]:
        got = mb.infos("INBOX", uids)
        assert sorted(got) == want
        assert all(got[u].subject.endswith(f" {u - 1}") for u in want)
        bare = mb.infos("INBOX", uids, envelopes=False)
        assert sorted(bare) == want and all(m.envelope_json is None for m in bare.values())
        assert [(m.flags, m.size, m.modseq) for m in bare.values()] == [
            (got[u].flags, got[u].size, got[u].modseq) for u in bare
        ]
