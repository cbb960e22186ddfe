"""The mailbox's face is the only door (issue 11): the public calls other packages use — the
folder listing, reading a message as text, the one writer path for new mail, ``RawMessage`` —
and a grep-level check that nothing outside ``gk/mail/mailbox`` imports its private modules or
touches a mailbox's database."""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path

import gevent
import pytest

from gk import events as bus
from gk.mail.mailbox import (
    MailboxStore,
    MaildirWriter,
    NewCopy,
    RawMessage,
    reading,
)

APPLIANCE = Path(__file__).resolve().parents[2] / "appliance"
PACKAGE = APPLIANCE / "gk" / "mail" / "mailbox"
PUBLIC = {
    "__init__",
    "reading",
    "writer",
    "message",
    "service",
}  # the face (service: the feature entry gk.features starts); everything else is private

# Known violations, each to disappear with the change named (the test fails if one is fixed
# and still listed: the list stays exact).
ALLOWED: set[tuple[str, str]] = set()  # none left: IMAP lists with list_folders and imports the face

_FROM_SUB = re.compile(r"^\s*from\s+gk\.mail\.mailbox\.(\w+)\s+import\b", re.M)
_IMPORT_SUB = re.compile(r"^\s*import\s+gk\.mail\.mailbox\.(\w+)", re.M)
_FROM_PKG = re.compile(r"^\s*from\s+gk\.mail\.mailbox\s+import\s+(\([^)]*\)|[^\n]+)", re.M)
# a mailbox object's database: mb.db…, self.mb.conn, mailbox.db, a UserMailbox's index file
_DATABASE = re.compile(r"\b(?:\w*mb|\w*mailbox\w*)\.(?:db|conn|execute|index_path)\b|index\.sqlite3")


def _private_modules() -> set[str]:
    return {p.stem for p in PACKAGE.glob("*.py")} - PUBLIC


def face_violations(root: Path = APPLIANCE) -> set[tuple[str, str]]:
    """(file relative to ``appliance/``, what it does) for every module outside the package that
    imports a private module of the mailbox or touches a mailbox's database."""
    private = _private_modules()
    out: set[tuple[str, str]] = set()
    for path in sorted((root / "gk").rglob("*.py")):
        if PACKAGE in path.parents:
            continue
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        for m in [*_FROM_SUB.finditer(text), *_IMPORT_SUB.finditer(text)]:
            if m.group(1) in private:
                out.add((rel, f"import gk.mail.mailbox.{m.group(1)}"))
        for m in _FROM_PKG.finditer(text):
            names = re.findall(r"\w+(?:\s+as\s+\w+)?", m.group(1).strip("()"))
            for name in names:
                if name.split()[0] in private:
                    out.add((rel, f"import gk.mail.mailbox.{name.split()[0]}"))
        for line in text.splitlines():
            code = line.split("#", 1)[0]
            for m in _DATABASE.finditer(code):
                start = max(0, code.rfind(" ", 0, m.start()) + 1)
                out.add((rel, f"database: {code[start : m.end()].strip()}"))
    return out


def test_nothing_outside_the_mailbox_uses_its_private_modules_or_database():
    found = face_violations()
    assert found - ALLOWED == set(), "use the public face (gk.mail.mailbox, reading, writer, message)"
    assert ALLOWED - found == set(), "fixed: remove it from ALLOWED"


def test_the_check_sees_each_kind_of_violation(tmp_path):
    """The grep above is not blind: a planted module with each violation is reported."""
    (tmp_path / "gk" / "mail" / "mailbox").mkdir(parents=True)
    (tmp_path / "gk" / "feature").mkdir(parents=True)
    (tmp_path / "gk" / "feature" / "bad.py").write_text(
        "from gk.mail.mailbox.textindex import decode_words\n"
        "import gk.mail.mailbox.store\n"
        "from gk.mail.mailbox import (\n    MailboxError,\n    mime,\n)\n"
        "from gk.mail.mailbox import reading, get_store\n"
        "def f(mb):\n    return mb.db.query('SELECT 1'), self_mailbox.conn\n"
    )
    found = face_violations(tmp_path)
    assert found == {
        ("gk/feature/bad.py", "import gk.mail.mailbox.textindex"),
        ("gk/feature/bad.py", "import gk.mail.mailbox.store"),
        ("gk/feature/bad.py", "import gk.mail.mailbox.mime"),
        ("gk/feature/bad.py", "database: mb.db"),
        ("gk/feature/bad.py", "database: self_mailbox.conn"),
    }


# -- list_folders ----------------------------------------------------------------------------------
def test_list_folders_gives_folders_and_subscribed_names_inbox_first(tmp_path):
    mb = MailboxStore(tmp_path / "mail").user("alice@example.org")
    mb.create_folder("Projects/Zeta")
    mb.create_folder("Archive/2024")
    mb.subscribe("Projects/Zeta")
    mb.create_folder("Gone")
    mb.subscribe("Gone")
    mb.delete_folder("Gone")  # the subscription outlives its folder (RFC 3501 6.3.6)
    os.mkdir(mb.root / ".Behind")  # a folder another program made
    for sub in ("cur", "new", "tmp"):
        os.mkdir(mb.root / ".Behind" / sub)
    listed = mb.list_folders()
    assert [f.name for f in listed] == [
        "INBOX",
        "Archive",
        "Archive/2024",
        "Behind",
        "Drafts",
        "Gone",
        "Junk",
        "Projects",
        "Projects/Zeta",
        "Sent",
        "Trash",
    ]
    by_name = {f.name: f for f in listed}
    assert by_name["Sent"].special_use == "\\Sent" and by_name["Sent"].subscribed and by_name["Sent"].exists
    assert by_name["Projects/Zeta"].subscribed and not by_name["Archive/2024"].subscribed
    assert not by_name["Gone"].exists and by_name["Gone"].subscribed and by_name["Gone"].special_use is None
    assert "Gone" not in {f.name for f in mb.list_folders(include_subscribed=False)}
    assert {f.name for f in mb.list_folders(include_subscribed=False)} == set(mb.folder_names())


# -- reading -------------------------------------------------------------------------------------
PDF = b"%PDF-1.4 " + bytes(range(256)) * 40


def _rich_message() -> bytes:
    pdf = base64.encodebytes(PDF).replace(b"\n", b"\r\n")
    return (
        b"From: Ann <ann@example.com>\r\nTo: alice@example.org\r\nSubject: report\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="M"\r\n\r\n'
        b'--M\r\nContent-Type: multipart/alternative; boundary="A"\r\n\r\n'
        b"--A\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Bonjour, voici le r=E9sum=E9.\r\n> old\r\n"
        b"--A\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<p>Bonjour, voici le <b>r\xc3\xa9sum\xc3\xa9</b>.</p><script>x()</script>\r\n"
        b"--A--\r\n"
        b"--M\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + pdf + b"\r\n--M--\r\n"
    )


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_reading_a_message_as_text_by_folder_and_uid(tmp_path):
    mb = MailboxStore(tmp_path / "mail").user("alice@example.org")
    _v, uid = mb.append("INBOX", _rich_message())
    _v, html_only = mb.append("INBOX", b"Content-Type: text/html\r\n\r\n<div>Hi &amp; bye</div><br>there\r\n")
    before = _open_fds()
    assert reading.body_text(mb, "INBOX", uid) == "Bonjour, voici le résumé.\r\n> old"
    assert reading.body_text(mb, "INBOX", html_only) == "Hi & bye\n\nthere"
    html = reading.body_html(mb, "INBOX", uid)
    assert html is not None and "<b>résumé</b>" in html  # as stored: sanitizing is the webmail's
    assert reading.message_preview(mb, "INBOX", uid) == "Bonjour, voici le résumé."
    (att,) = reading.message_attachments(mb, "INBOX", uid)
    assert att == reading.Attachment("2", "résumé.pdf", "application/pdf", len(PDF))
    found = reading.attachment(mb, "INBOX", uid, att.path)
    assert found is not None
    described, chunks = found
    assert described.name == "résumé.pdf" and b"".join(chunks) == PDF
    assert reading.attachment(mb, "INBOX", uid, "1") is None  # a multipart, not a leaf
    assert reading.attachment(mb, "INBOX", uid, "7") is None
    assert reading.attachment(mb, "INBOX", uid, "x") is None
    _, unread = reading.attachment(mb, "INBOX", uid, att.path) or (None, iter(()))
    unread.close()  # a download cut short closes the file too
    assert _open_fds() == before  # every call closed the message file it opened


def test_part_text_is_one_function_for_the_index_and_the_reader(tmp_path):
    """``part_text`` exists once (the FTS index used to have its own with other defaults)."""
    mb = MailboxStore(tmp_path / "mail").user("alice@example.org")
    raw = "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus Köln\r\n".encode()
    _v, uid = mb.append("INBOX", raw)
    assert reading.body_text(mb, "INBOX", uid).strip() == "Grüße aus Köln"
    assert mb.search_text("INBOX", "Köln") == [uid]
    from gk.mail.mailbox import textindex  # inside the package's own test: allowed

    assert textindex.part_text is reading.part_text


# -- the writer ------------------------------------------------------------------------------------
def test_the_writer_writes_durably_and_announces_each_folder_once(tmp_path):
    store = MailboxStore(tmp_path / "mail")
    writer = MaildirWriter(tmp_path / "mail")
    events: list[tuple[str, str, str]] = []

    def seen(ev: bus.Event) -> None:
        events.append((ev.user, ev.folder, "new" if isinstance(ev, bus.MaildirChanged) else type(ev).__name__))

    bus.subscribe("alice@example.org", seen)
    bus.subscribe("bob@example.org", seen)
    try:
        junk = writer.folder_dir("bob@example.org", "Junk")
        for sub in ("tmp", "new", "cur"):  # as delivery's copy_with_headers leaves it
            (junk / sub).mkdir(parents=True)
        big = junk / "tmp" / "big.eml"
        big.write_bytes(b"Subject: big\r\n\r\n" + b"x" * 100_000 + b"\r\n")
        copies = [
            NewCopy("alice@example.org", "INBOX", RawMessage(data=b"Subject: one\r\n\r\n1\r\n")),
            NewCopy("alice@example.org", "INBOX", RawMessage(data=b"Subject: two\r\n\r\n2\r\n")),
            NewCopy("bob@example.org", "Junk", RawMessage(path=big)),
        ]
        results = gevent.spawn(writer.deliver, copies).get()
        assert all(isinstance(r, Path) and r.parent.name == "new" and r.exists() for r in results)
        assert not big.exists()  # renamed into new/, not copied
        assert sorted(events) == [("alice@example.org", "INBOX", "new"), ("bob@example.org", "Junk", "new")]
        path = gevent.spawn(writer.deliver_bounce, "alice@example.org", b"Subject: bounce\r\n\r\nb\r\n").get()
        assert path.parent == writer.folder_dir("alice@example.org", "INBOX") / "new"
        assert events[-1] == ("alice@example.org", "INBOX", "new")
        mb = store.user("alice@example.org")
        assert sorted(m.subject for m in mb.messages("INBOX")) == ["bounce", "one", "two"]  # indexed
        assert [m.subject for m in store.user("bob@example.org").messages("Junk")] == ["big"]
    finally:
        bus.unsubscribe("alice@example.org", seen)
        bus.unsubscribe("bob@example.org", seen)


def test_append_is_announced_once_through_the_writer(tmp_path, monkeypatch):
    from gk.mail.mailbox import writer as writer_module

    calls: list[bus.Event] = []
    monkeypatch.setattr(writer_module.events, "publish", calls.append)
    mb = MailboxStore(tmp_path / "mail").user("alice@example.org")
    _v, uid = mb.append("Sent", RawMessage(data=b"Subject: s\r\n\r\nx\r\n"), flags=("\\Seen",))
    assert calls == [bus.MessagesAdded("alice@example.org", "Sent", (uid,), mb.highestmodseq("Sent"))]


def test_a_failed_copy_leaves_nothing_and_is_not_announced(tmp_path):
    writer = MaildirWriter(tmp_path / "mail")
    events: list[str] = []

    def seen(ev: bus.Event) -> None:
        events.append(ev.folder)

    bus.subscribe("alice@example.org", seen)
    try:
        md = writer.folder_dir("alice@example.org", "INBOX")
        for sub in ("tmp", "new", "cur"):
            (md / sub).mkdir(parents=True)
        ghost = md / "tmp" / "never-written"
        (result,) = gevent.spawn(writer.deliver, [NewCopy("alice@example.org", "INBOX", RawMessage(path=ghost))]).get()
        assert isinstance(result, OSError)
        assert events == [] and os.listdir(md / "new") == []
    finally:
        bus.unsubscribe("alice@example.org", seen)


# -- RawMessage ------------------------------------------------------------------------------------
def test_raw_message_is_one_typed_value_for_memory_file_and_stream(tmp_path):
    f = tmp_path / "m.eml"
    f.write_bytes(b"Subject: f\r\n\r\n" + b"y" * 200_000)
    mem, spooled = RawMessage.of(b"Subject: m\r\n\r\nx"), RawMessage.of(f)
    stream = RawMessage.of(io.BytesIO(b"Subject: s\r\n\r\nz"))
    assert mem.in_memory and mem.size() == 15 and mem.path is None
    assert not spooled.in_memory and spooled.path == f and spooled.size() == f.stat().st_size
    assert stream.size() is None
    assert b"".join(spooled.chunks()) == f.read_bytes() and len(list(spooled.chunks())) > 1
    assert b"".join(stream.chunks()) == b"Subject: s\r\n\r\nz"
    with mem.open() as fh:
        assert fh.read() == b"Subject: m\r\n\r\nx"
    assert RawMessage.of(mem) is mem
    with pytest.raises(ValueError):
        RawMessage(data=b"x", path=f)
