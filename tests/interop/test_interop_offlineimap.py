"""offlineimap3 (Debian's ``offlineimap``, imaplib2) two-way sync of a GK account over IMAPS,
trusting only the server's own certificate (pinned by fingerprint): several folders, one with a non-ASCII name
(``utf8foldernames``: ``Entwürfe`` locally, modified UTF-7 on the wire), \\Seen, \\Flagged and
\\Draft both ways, a new message and a deletion on each side. After the second run both sides
hold the same messages with the same flags; a third run changes nothing on either side (same
local file names, same HIGHESTMODSEQ per folder on the server)."""

from __future__ import annotations

import hashlib
import imaplib
import re
import ssl

from interop_support import ALICE, PASSWORD, cert, module_server, need, run

gk_server = module_server()

FOLDERS = ("INBOX", "Projekte", "Entwürfe")
_LETTER = {"\\Seen": "S", "\\Flagged": "F", "\\Draft": "D", "\\Answered": "R", "\\Deleted": "T"}


def utf7(name: str) -> str:
    from gk.mail.imap import utf7 as codec

    return name if name == "INBOX" else codec.encode(name)


def message(subject: str) -> bytes:
    return (
        f"From: Carol <carol@example.net>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.net>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\nbody of {subject}, grüße\r\n"
    ).encode()


def imap_login(srv) -> imaplib.IMAP4_SSL:  # type: ignore[no-untyped-def]
    ctx = ssl.create_default_context(cafile=str(cert(srv)))
    ctx.check_hostname = False  # the certificate names mx.test.example; we connect to 127.0.0.1
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imap.tls_port"), ssl_context=ctx, timeout=30)
    m.login(ALICE, PASSWORD)
    return m


def quoted(name: str) -> str:
    return '"' + utf7(name) + '"'


def server_state(srv) -> tuple[dict[str, dict[str, str]], dict[str, int]]:  # type: ignore[no-untyped-def]
    """{folder: {subject: flag letters}} and {folder: HIGHESTMODSEQ}, read over IMAP (EXAMINE:
    nothing changes by looking)."""
    m = imap_login(srv)
    state: dict[str, dict[str, str]] = {}
    modseqs: dict[str, int] = {}
    try:
        for folder in FOLDERS:
            typ, data = m.status(quoted(folder), "(HIGHESTMODSEQ)")
            assert typ == "OK", data
            modseqs[folder] = int(re.search(rb"HIGHESTMODSEQ (\d+)", data[0]).group(1))  # type: ignore[union-attr]
            typ, data = m.select(quoted(folder), readonly=True)
            assert typ == "OK", data
            got: dict[str, str] = {}
            if int(data[0]):
                typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                assert typ == "OK", data
                for item in data:
                    if not isinstance(item, tuple):
                        continue
                    flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()  # type: ignore[union-attr]
                    subject = item[1].decode().split(":", 1)[1].strip()
                    assert subject not in got, f"{subject} twice in {folder}"
                    got[subject] = "".join(sorted(_LETTER[f] for f in flags if f in _LETTER))
            state[folder] = got
            m.unselect()
    finally:
        m.logout()
    return state, modseqs


def local_state(local) -> tuple[dict[str, dict[str, str]], list[str]]:  # type: ignore[no-untyped-def]
    """{folder: {subject: flag letters}} of the local Maildirs, and every file name there."""
    state: dict[str, dict[str, str]] = {}
    names: list[str] = []
    for folder in FOLDERS:
        got: dict[str, str] = {}
        for sub in ("new", "cur"):
            for p in sorted((local / folder / sub).iterdir()):
                names.append(f"{folder}/{sub}/{p.name}")
                subject = re.search(rb"^Subject: (.*?)\r?$", p.read_bytes(), re.M).group(1).decode()  # type: ignore[union-attr]
                assert subject not in got, f"{subject} twice in local {folder}"
                info = p.name.rsplit(":2,", 1)[1] if ":2," in p.name else ""
                got[subject] = "".join(sorted(ch for ch in info if ch in "DFRST"))
        state[folder] = got
    return state, sorted(names)


def local_file(local, folder: str, subject: str):  # type: ignore[no-untyped-def]
    for sub in ("new", "cur"):
        for p in (local / folder / sub).iterdir():
            if f"Subject: {subject}".encode() in p.read_bytes():
                return p
    raise AssertionError(f"no local message {subject} in {folder}")


def write_config(srv, tmp_path):  # type: ignore[no-untyped-def]
    local = tmp_path / "local"
    local.mkdir()
    rc = tmp_path / "offlineimaprc"
    # imaplib2 checks a CA file's name against remotehost (127.0.0.1; the certificate names
    # mx.test.example) and has no override: pin the server's certificate by its SHA-256 instead
    fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert(srv).read_text())).hexdigest()
    rc.write_text(
        f"""[general]
accounts = gk
metadata = {tmp_path}/meta
ui = basic

[Account gk]
localrepository = local
remoterepository = remote
utf8foldernames = yes

[Repository local]
type = Maildir
localfolders = {local}

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {srv.port("imap.tls_port")}
ssl = yes
cert_fingerprint = {fingerprint}
remoteuser = {ALICE}
remotepass = {PASSWORD}
folderfilter = lambda name: name in {list(FOLDERS)!r}
createfolders = True
expunge = yes
maxconnections = 1
"""
    )
    rc.chmod(0o600)
    return rc, local


def offlineimap(rc, tmp_path) -> str:  # type: ignore[no-untyped-def]
    res = run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], env={"HOME": str(tmp_path)}, timeout=180)
    out = (res.stdout + res.stderr).decode(errors="replace")
    assert res.returncode == 0, out
    assert "ERROR" not in out and "WARNING" not in out and "Traceback" not in out, out
    return out


def test_offlineimap_two_way_sync_converges(gk_server, tmp_path):
    need("offlineimap")
    srv = gk_server
    m = imap_login(srv)
    for folder in ("Projekte", "Entwürfe"):
        assert m.create(quoted(folder))[0] == "OK"
    seed = {
        "INBOX": [("in-one", ""), ("in-two", "\\Seen"), ("in-three", "")],
        "Projekte": [("proj-one", "\\Flagged"), ("proj-two", "")],
        "Entwürfe": [("draft-one", "\\Draft \\Seen")],
    }
    for folder, msgs in seed.items():
        for subject, flags in msgs:
            typ, data = m.append(quoted(folder), f"({flags})", None, message(subject))
            assert typ == "OK", data
    m.logout()

    # 1. first run: everything comes down, flags included, the non-ASCII folder in UTF-8
    rc, local = write_config(srv, tmp_path)
    offlineimap(rc, tmp_path)
    assert (local / "Entwürfe" / "cur").is_dir()
    want = {
        "INBOX": {"in-one": "", "in-two": "S", "in-three": ""},
        "Projekte": {"proj-one": "F", "proj-two": ""},
        "Entwürfe": {"draft-one": "DS"},
    }
    assert local_state(local)[0] == want
    assert server_state(srv)[0] == want

    # 2. changes on both sides
    f = local_file(local, "INBOX", "in-one")
    f.rename(local / "INBOX" / "cur" / (f.name.split(":2,")[0] + ":2,S"))  # local: \Seen
    f = local_file(local, "INBOX", "in-three")
    f.rename(local / "INBOX" / "cur" / (f.name.split(":2,")[0] + ":2,F"))  # local: \Flagged
    local_file(local, "Projekte", "proj-two").unlink()  # local: a deletion
    (local / "Entwürfe" / "cur" / "1800000000.localdraft.host:2,D").write_bytes(message("draft-local"))
    m = imap_login(srv)
    m.select("INBOX")
    typ, data = m.search(None, "SUBJECT", "in-two")
    assert m.store(data[0].decode(), "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"  # server: a deletion
    assert m.expunge()[0] == "OK"
    m.select("Projekte")
    typ, data = m.search(None, "SUBJECT", "proj-one")
    assert m.store(data[0].decode(), "+FLAGS.SILENT", "(\\Seen)")[0] == "OK"  # server: \Seen
    assert m.append("Projekte", "(\\Flagged)", None, message("proj-server"))[0] == "OK"
    m.logout()

    # 3. second run: both sides converge
    offlineimap(rc, tmp_path)
    want = {
        "INBOX": {"in-one": "S", "in-three": "F"},
        "Projekte": {"proj-one": "FS", "proj-server": "F"},
        "Entwürfe": {"draft-one": "DS", "draft-local": "D"},
    }
    local_after, names = local_state(local)
    server_after, modseqs = server_state(srv)
    assert local_after == want
    assert server_after == want
    body = local_file(local, "Entwürfe", "draft-local").read_bytes()
    assert body.replace(b"\r\n", b"\n").endswith(b"body of draft-local, gr\xc3\xbc\xc3\x9fe\n")

    # 4. a third run is a no-op on both sides
    offlineimap(rc, tmp_path)
    assert local_state(local) == (want, names)
    assert server_state(srv) == (want, modseqs)
