"""getmail6 (Debian's ``getmail``) retrieving Bob's INBOX over IMAPS into a local Maildir,
trusting only the server's own certificate (``ca_certs`` + ``ssl_cert_hostname``): with
``delete = false`` it fetches every message whole (BODY.PEEK: nothing becomes \\Seen, nothing is
removed); with ``read_all = false`` a later run fetches only what it has not fetched before, and
a run after that fetches nothing; ``imap_search = UNSEEN`` fetches only the unseen ones."""

from __future__ import annotations

import imaplib
import os
import pwd
import re
import shutil
import ssl
import tempfile

import pytest
from interop_support import BOB, HOSTNAME, PASSWORD, cert, module_server, need, run, strip_trace

gk_server = module_server()


def message(i: int) -> bytes:
    return (
        f"From: Alice <alice@example.org>\r\nTo: {BOB}\r\nSubject: getmail {i} Grüße\r\n"
        f"Message-ID: <getmail{i}@example.org>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\nbody {i} wörld\r\n" + "a longer line of body text\r\n" * (i * 300)
    ).encode()


def imap_login(srv) -> imaplib.IMAP4_SSL:  # type: ignore[no-untyped-def]
    ctx = ssl.create_default_context(cafile=str(cert(srv)))
    ctx.check_hostname = False  # the certificate names mx.test.example; we connect to 127.0.0.1
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imap.tls_port"), ssl_context=ctx, timeout=30)
    m.login(BOB, PASSWORD)
    return m


def server_flags(srv) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """{message number: flags} of Bob's INBOX (EXAMINE: looking changes nothing)."""
    m = imap_login(srv)
    try:
        m.select("INBOX", readonly=True)
        typ, data = m.fetch("1:*", "(FLAGS)")
        assert typ == "OK", data
        out = {}
        for line in data:
            found = re.match(rb"(\d+) \(FLAGS \(([^)]*)\)\)", line)  # type: ignore[arg-type]
            assert found, line
            out[int(found.group(1))] = found.group(2).decode().replace("\\Recent", "").strip()
        return out
    finally:
        m.logout()


@pytest.fixture
def local_maildir():  # type: ignore[no-untyped-def]
    """An empty Maildir getmail can deliver into. getmail refuses to deliver as root: as root it
    delivers as ``nobody``, so the Maildir lives outside pytest's root-only tmp tree."""
    root = tempfile.mkdtemp(prefix="gk-getmail-")
    os.chmod(root, 0o755)
    path = os.path.join(root, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub))
    user = ""
    if os.geteuid() == 0:
        user = "nobody"
        nobody = pwd.getpwnam(user)
        for d in (path, *(os.path.join(path, s) for s in ("cur", "new", "tmp"))):
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
    yield path, user
    shutil.rmtree(root, ignore_errors=True)


def getmail(srv, tmp_path, maildir: str, user: str, name: str, **options: str):  # type: ignore[no-untyped-def]
    getmaildir = tmp_path / "getmail"
    getmaildir.mkdir(exist_ok=True)
    rc = getmaildir / name
    opts = {"verbose": "2", "delete": "false", "read_all": "true", "delivered_to": "false", "received": "false"}
    opts.update(options)
    search = opts.pop("imap_search", "")
    rc.write_text(
        "[retriever]\n"
        "type = SimpleIMAPSSLRetriever\n"
        "server = 127.0.0.1\n"
        f"port = {srv.port('imap.tls_port')}\n"
        f"username = {BOB}\n"
        f"password = {PASSWORD}\n"
        'mailboxes = ("INBOX",)\n'
        f"ca_certs = {cert(srv)}\n"
        f"ssl_cert_hostname = {HOSTNAME}\n"
        "record_mailbox = false\n"  # no X-getmail-retrieved-from-mailbox: the bytes stay comparable
        + (f"imap_search = {search}\n" if search else "")
        + "\n"
        "[destination]\n"
        "type = Maildir\n"
        f"path = {maildir}/\n" + (f"user = {user}\n" if user else "") + "\n"
        "[options]\n" + "".join(f"{k} = {v}\n" for k, v in opts.items())
    )
    rc.chmod(0o600)
    res = run(["getmail", "--getmaildir", str(getmaildir), "--rcfile", name], env={"HOME": str(tmp_path)}, timeout=120)
    out = (res.stdout + res.stderr).decode(errors="replace")
    assert res.returncode == 0, out
    assert "error" not in out.lower() and "warning" not in out.lower(), out
    found = re.search(r"(\d+) messages? \(\d+ bytes\) retrieved", out)
    assert found, out
    return int(found.group(1)), out


def local_messages(maildir: str) -> list[bytes]:
    """Every message getmail delivered, without the Return-Path getmail puts on top."""
    return sorted(
        strip_trace(open(os.path.join(maildir, sub, n), "rb").read())
        for sub in ("new", "cur")
        for n in os.listdir(os.path.join(maildir, sub))
    )


def test_getmail_imaps_keep_then_only_new(gk_server, tmp_path, local_maildir):
    need("getmail")
    srv = gk_server
    maildir, user = local_maildir
    m = imap_login(srv)
    for i in range(3):
        assert m.append("INBOX", "(\\Seen)" if i == 1 else "()", None, message(i))[0] == "OK"
    m.logout()
    assert server_flags(srv) == {1: "", 2: "\\Seen", 3: ""}

    # delete = false, read_all = true: everything, whole; the server keeps it all, unchanged
    count, _ = getmail(srv, tmp_path, maildir, user, "keep")
    assert count == 3
    # whole, byte for byte (getmail stores LF line ends)
    assert local_messages(maildir) == sorted(message(i).replace(b"\r\n", b"\n") for i in range(3))
    assert server_flags(srv) == {1: "", 2: "\\Seen", 3: ""}

    # read_all = false: only what this getmail has not retrieved before
    m = imap_login(srv)
    for i in (3, 4):
        assert m.append("INBOX", "()", None, message(i))[0] == "OK"
    m.logout()
    count, _ = getmail(srv, tmp_path, maildir, user, "new-only", read_all="false")
    assert count == 2
    got = local_messages(maildir)
    assert got == sorted(message(i).replace(b"\r\n", b"\n") for i in range(5))
    count, _ = getmail(srv, tmp_path, maildir, user, "new-only", read_all="false")
    assert count == 0
    assert len(local_messages(maildir)) == 5
    assert server_flags(srv) == {1: "", 2: "\\Seen", 3: "", 4: "", 5: ""}

    # imap_search = UNSEEN (read_all = true again): the four without \Seen, nothing else
    count, _ = getmail(srv, tmp_path, maildir, user, "unseen", imap_search="UNSEEN")
    assert count == 4
    assert len(local_messages(maildir)) == 9
    assert len(server_flags(srv)) == 5
