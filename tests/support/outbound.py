"""Helpers shared by the queue/outbound tests: a ``gk serve`` whose queue delivers to the peer
MTAs of ``support.peermta``, test messages, ``gk queue`` from the CLI, DSNs in the sender's
INBOX, and a real mail client submitting to GK."""

from __future__ import annotations

import email
import json
import time

from support.gkserver import gk

ALICE = "alice@test.example"


def message(n: int = 1, to: str = "bob@example.org", subject: str = "") -> str:
    return (
        f"From: Alice <{ALICE}>\r\nTo: <{to}>\r\nSubject: {subject or f'hello {n}'}\r\n"
        f"Message-ID: <m{n}.{time.time_ns()}@test.example>\r\nDate: Wed, 25 Nov 2026 16:00:00 +0000\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Hello Bob, message {n}.\r\n.a line starting with a dot\r\n"
    )


def inject(srv, mail_from: str, rcpts: list[str], body: str) -> int:  # type: ignore[no-untyped-def]
    cp = gk(srv.data_dir, "queue", "inject", "--from", mail_from, *rcpts, input=body)
    return int(cp.stdout.strip())


def start_gk(make_server, dns_server, port: int, ca_file: str = "", **queue) -> object:  # type: ignore[no-untyped-def]
    q = {"remote_smtp_port": port, "retry_minutes": [0.01], "connect_timeout": 3.0, "command_timeout": 5.0}
    if ca_file:
        q["ca_file"] = ca_file
    q.update(queue)
    srv = make_server(overrides={"dns": dns_server.config(), "queue": q})
    srv.add_user(ALICE, "correct horse battery staple")
    return srv.start()


def dsns(srv) -> list[email.message.Message]:  # type: ignore[no-untyped-def]
    new = srv.data_dir / "mail" / ALICE / "Maildir" / "new"
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(new.glob("*"))] if new.is_dir() else []


def wait_queue_empty(srv, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Poll `gk queue list` until empty (the last commit lands just after the peer's 250)."""
    deadline = time.monotonic() + timeout
    while (listing := gk(srv.data_dir, "queue", "list").stdout.strip()) != "queue is empty":
        assert time.monotonic() < deadline, listing
        time.sleep(0.2)


# -- a real mail client submitting to GK (port 587: STARTTLS, AUTH) -------------------------
def submit(port: int, user: str, password: str, mail_from: str, rcpts: list[str], bodies: list[str]) -> None:
    """Send each body in one SMTP session to GK's submission port, like a phone's mail app."""
    import smtplib
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # GK's self-signed certificate
    # generous: each 250 waits for fsyncs, which a disk busy with other work can hold up for long
    with smtplib.SMTP("127.0.0.1", port, timeout=180) as s:
        s.starttls(context=ctx)
        s.login(user, password)
        for body in bodies:
            s.sendmail(mail_from, rcpts, body.encode())


# -- the queue as `gk queue ... --json` shows it ----------------------------------------------
def queue_list(srv) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every pending recipient row (`gk queue list --json`)."""
    return json.loads(gk(srv.data_dir, "queue", "list", "--json").stdout)


def queue_show(srv, msg_id: int) -> dict | None:  # type: ignore[no-untyped-def]
    """One queued message with its recipients and their attempts (`gk queue show ID --json`),
    None once it has left the queue."""
    cp = gk(srv.data_dir, "queue", "show", str(msg_id), "--json", check=False)
    if cp.returncode == 1 and "no queued message" in cp.stderr:
        return None
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def wait_deferred(srv, msg_id: int, rcpt: str, attempts: int = 1, timeout: float = 60.0) -> dict:  # type: ignore[no-untyped-def]
    """The recipient row of ``rcpt`` (with its ``attempts`` list) once the queue has recorded at
    least ``attempts`` deferred attempts of it and it is still queued for a retry."""
    deadline = time.monotonic() + timeout
    while True:
        msg = queue_show(srv, msg_id)
        row = next((r for r in (msg or {}).get("recipients", []) if r["rcpt"] == rcpt), None)
        if row and row["state"] == "queued" and sum(a["outcome"] == "deferred" for a in row["attempts"]) >= attempts:
            return row
        assert time.monotonic() < deadline, (
            f"msg {msg_id} rcpt {rcpt} not deferred {attempts}x: {msg}\n{srv.log()[-3000:]}"
        )
        time.sleep(0.2)
