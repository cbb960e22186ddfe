"""Memory returned after password checks: argon2id with the board's cost (19 MiB per hash) must
not leave its blocks in GK's resident set (glibc's dynamic mmap threshold kept each hash's
19 MiB on the heap after the second login: +19.5 MB for the life of the process)."""

from __future__ import annotations

import imaplib
import time

from test_imap_support import tls_client_context


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_argon2_memory_is_given_back(make_server):  # type: ignore[no-untyped-def]
    srv = make_server("gk", {"http": {"https_port": 0}})  # default argon2 cost: 19 MiB, t=2
    srv.write_config()
    users = [(f"u{i}@example.org", f"password number {i}") for i in range(3)]
    for address, password in users:
        srv.add_user(address, password)
    srv.start()

    def login(address: str, password: str) -> None:
        m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imap.tls_port"), ssl_context=tls_client_context(), timeout=30)
        m.login(address, password)
        m.logout()

    login(*users[0])  # first hash: warms imports, TLS and caches
    time.sleep(0.5)
    before = rss_kb(srv.pid())
    for address, password in users[1:]:
        login(address, password)  # each a fresh argon2id verification (not in the credential cache)
    time.sleep(0.5)
    grown = rss_kb(srv.pid()) - before
    assert grown < 8 * 1024, f"RSS grew by {grown} kB over two password checks (a hash is 19,456 kB)"
