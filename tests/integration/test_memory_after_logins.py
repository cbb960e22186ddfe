"""Memory returned after password checks: argon2id with the board's cost (19 MiB per hash) must
not leave its blocks in GK's resident set (glibc's dynamic mmap threshold kept each hash's
19 MiB on the heap after the second login: +19.5 MB for the life of the process)."""

from __future__ import annotations

import imaplib
import time

from support.imap import tls_client_context


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


def mapped_libraries(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def test_idle_server_loads_web_and_dkim_libraries_only_when_used(make_server):  # type: ignore[no-untyped-def]
    """nh3 (HTML sanitizer, 1.4 MB) and PyNaCl (pulled in by dkimpy) are imported on first use:
    an idle box whose web UI nobody opened and that has seen no signed mail does not map them.
    A web page then works (jinja2 built on the first render)."""
    import urllib.request

    srv = make_server("gk", {"http": {"https_port": 0}})
    srv.start()
    maps = mapped_libraries(srv.pid())
    assert "nh3" not in maps and "_sodium" not in maps, "idle gk serve mapped nh3 or PyNaCl at start"
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.port('http.port')}/", timeout=30) as resp:
        page = resp.read().decode()
    assert resp.status == 200 and "<html" in page.lower()
