"""mbsync (isync 1.4) two-way sync of a GK account over IMAPS, trusting only the server's own
self-signed certificate: pull every folder, push local flag changes, a new message, a message in
Sent, a deletion and a new folder with a non-ASCII name (mbsync 1.4 keeps modified UTF-7 names
verbatim, so the local folder is called ``Entw&APw-rfe``), then pull server-side changes and
re-sync. After each run GK's Maildir must hold the expected files and flags, and mbsync must exit
0 without a warning."""

from __future__ import annotations

import imaplib
import re
import ssl

from interop_support import (
    ALICE,
    PASSWORD,
    cert,
    curl_send,
    flags_of,
    maildir,
    messages,
    module_server,
    need,
    run,
    strip_trace,
)

gk_server = module_server()

UTF8_MESSAGE = (
    "From: Alice <alice@example.org>\r\n"
    "To: Alice <alice@example.org>\r\n"
    "Subject: Grüße {tag}\r\n"
    "Message-ID: <{tag}@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Hällo wörld ✓ {tag}\r\n"
).encode()


def local_message(tag: str) -> bytes:
    return (
        f"From: Local <local@example.net>\r\nTo: {ALICE}\r\nSubject: {tag}\r\n"
        f"Message-ID: <{tag}@local.example.net>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nbody of {tag}\r\n"
    ).encode()


def write_config(srv, tmp_path):  # type: ignore[no-untyped-def]
    local = tmp_path / "local"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount gk
Host 127.0.0.1
Port {srv.port("imap.tls_port")}
User {ALICE}
Pass "{PASSWORD}"
SSLType IMAPS
CertificateFile {cert(srv)}
Timeout 60

IMAPStore gk-remote
Account gk

MaildirStore gk-local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel gk
Far :gk-remote:
Near :gk-local:
Patterns *
Create Both
Remove None
Expunge Both
SyncState *
"""
    )
    return rc, local


def mbsync(rc) -> str:  # type: ignore[no-untyped-def]
    res = run(["mbsync", "-c", str(rc), "-a"], timeout=120)
    out = (res.stdout + res.stderr).decode(errors="replace")
    assert res.returncode == 0, out
    assert "warning" not in out.lower() and "error" not in out.lower(), out
    return out


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def local_bytes(path) -> bytes:  # type: ignore[no-untyped-def]
    """A file mbsync copied, without the ``X-TUID`` line mbsync adds to every copied message
    (its crash-recovery tag, also in what it uploads)."""
    return re.sub(rb"^X-TUID: [^\n]*\n", b"", path.read_bytes(), count=1, flags=re.M)


def by_tag(folder, tag: bytes):  # type: ignore[no-untyped-def]
    found = [p for p in messages(folder) if tag in p.read_bytes()]
    assert len(found) == 1, f"{len(found)} messages with {tag!r} in {folder}"
    return found[0]


def imap_login(srv) -> imaplib.IMAP4_SSL:  # type: ignore[no-untyped-def]
    ctx = ssl.create_default_context(cafile=str(cert(srv)))
    ctx.check_hostname = False  # the certificate names mx.test.example; we connect to 127.0.0.1
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imap.tls_port"), ssl_context=ctx, timeout=30)
    m.login(ALICE, PASSWORD)
    return m


def test_mbsync_two_way_sync(gk_server, tmp_path):
    need("mbsync", "curl")
    srv = gk_server
    inbox = maildir(srv, ALICE)
    sent = [UTF8_MESSAGE.replace(b"{tag}", t) for t in (b"first", b"second", b"third")]
    for i, data in enumerate(sent):
        eml = tmp_path / f"m{i}.eml"
        eml.write_bytes(data)
        res = curl_send(srv, eml, [ALICE], implicit_tls=bool(i % 2))
        assert res.returncode == 0, res.stderr
    m = imap_login(srv)
    m.select("INBOX")
    typ, data = m.uid("SEARCH", None, "SUBJECT", "second")
    assert typ == "OK" and len(data[0].split()) == 1
    assert m.uid("STORE", data[0], "+FLAGS.SILENT", r"(\Flagged)")[0] == "OK"
    m.logout()

    # 1. pull everything
    rc, local = write_config(srv, tmp_path)
    mbsync(rc)
    for name in ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert (local / name / "cur").is_dir(), name
    local_inbox = local / "INBOX"
    assert len(messages(local_inbox)) == 3
    for data, tag in zip(sent, (b"first", b"second", b"third"), strict=True):
        got = local_bytes(by_tag(local_inbox, tag))
        # byte for byte, 8-bit included; mbsync stores local files with LF line ends
        assert got == lf(by_tag(inbox, tag).read_bytes())
        assert strip_trace(got) == lf(data)
    assert "F" in flags_of(by_tag(local_inbox, b"second"))
    assert "S" not in flags_of(by_tag(local_inbox, b"first"))

    # 2. local changes: flags, a deletion, a new message, one in Sent, a new non-ASCII folder
    first = by_tag(local_inbox, b"first")
    first.rename(first.parent.parent / "cur" / (first.name.split(":2,")[0] + ":2,RS"))
    by_tag(local_inbox, b"third").unlink()
    (local_inbox / "new" / "1800000000.localnew.host").write_bytes(local_message("localnew"))
    (local / "Sent" / "cur" / "1800000001.localsent.host:2,S").write_bytes(local_message("localsent"))
    umlaut = local / "Entw&APw-rfe"
    for sub in ("cur", "new", "tmp"):
        (umlaut / sub).mkdir(parents=True)
    (umlaut / "cur" / "1800000002.draft.host:2,DS").write_bytes(local_message("umlautdraft"))
    mbsync(rc)

    assert len(messages(inbox)) == 3
    assert flags_of(by_tag(inbox, b"first")) == "RS"
    assert flags_of(by_tag(inbox, b"second")) == "F"
    assert not [p for p in messages(inbox) if b"third" in p.read_bytes()]
    assert local_bytes(by_tag(inbox, b"localnew")) == local_message("localnew")  # CRLF on the server
    assert "S" in flags_of(by_tag(maildir(srv, ALICE, "Sent"), b"localsent"))
    server_umlaut = maildir(srv, ALICE, "Entwürfe")
    assert server_umlaut.is_dir()
    assert flags_of(by_tag(server_umlaut, b"umlautdraft")) == "DS"

    # 3. server-side changes come back down; a further run changes nothing
    m = imap_login(srv)
    m.select("INBOX")
    typ, data = m.uid("SEARCH", None, "SUBJECT", "second")
    assert m.uid("STORE", data[0], "+FLAGS.SILENT", r"(\Seen)")[0] == "OK"
    assert m.uid("STORE", data[0], "-FLAGS.SILENT", r"(\Flagged)")[0] == "OK"
    m.logout()
    fourth = tmp_path / "fourth.eml"
    fourth.write_bytes(UTF8_MESSAGE.replace(b"{tag}", b"fourth"))
    assert curl_send(srv, fourth, [ALICE]).returncode == 0
    mbsync(rc)
    assert flags_of(by_tag(local_inbox, b"second")) == "S"
    assert local_bytes(by_tag(local_inbox, b"fourth")) == lf(by_tag(inbox, b"fourth").read_bytes())
    assert len(messages(local_inbox)) == 4 and len(messages(inbox)) == 4
    before = sorted(p.name for p in messages(inbox))
    mbsync(rc)
    assert sorted(p.name for p in messages(inbox)) == before
    assert len(messages(local_inbox)) == 4
