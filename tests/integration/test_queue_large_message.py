# ruff: noqa: F811  (pytest fixtures imported from support.peermta / support.testca)
"""A 40 MB message is DKIM-signed, spooled and delivered without being held in memory.

Peak RSS is measured, not time: the ``gk queue inject`` process (which signs and spools) and
the ``gk serve`` process (which streams DATA) may each grow by a few MB, not by the message.
"""

from __future__ import annotations

import os
import subprocess
import sys

import dkim
import dns.resolver
from support.gkserver import gk
from support.outbound import ALICE, start_gk
from support.peermta import peers  # noqa: F401

SIZE_MB = 40


def vm_hwm_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def inject_peak_kib(data_dir, body_path) -> int:  # type: ignore[no-untyped-def]
    """Run `gk queue inject` with the message on stdin; return its peak RSS (KiB)."""
    with open(body_path, "rb") as stdin:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gk",
                "queue",
                "inject",
                "--from",
                ALICE,
                "bob@example.org",
                "--data-dir",
                str(data_dir),
            ],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    return usage.ru_maxrss


def test_large_message_is_streamed(tmp_path, make_server, dns_server, peers):
    peer = peers("127.0.0.2")
    dns_server.add("example.org", "MX", "10 mx1.example.org.").add("mx1.example.org", "A", "127.0.0.2")
    srv = start_gk(make_server, dns_server, peers.port)
    for rec in __import__("json").loads(gk(srv.data_dir, "dns", "records", "test.example", "--json").stdout):
        if rec["type"] == "TXT":
            dns_server.add(rec["name"], "TXT", rec["value"])
    head = f"From: <{ALICE}>\r\nTo: <bob@example.org>\r\nSubject: big\r\nMessage-ID: <big@test.example>\r\n\r\n"
    small, big = tmp_path / "small.eml", tmp_path / "big.eml"
    small.write_bytes(head.encode() + b"tiny\r\n")
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n"
    with open(big, "wb") as f:
        f.write(head.encode())
        for _ in range(SIZE_MB * 1024 * 1024 // len(line)):
            f.write(line)
    small_peak = inject_peak_kib(srv.data_dir, small)
    peer.wait_for(1)
    serve_before = vm_hwm_kib(srv.pid())
    big_peak = inject_peak_kib(srv.data_dir, big)
    msgs = peer.wait_for(2, timeout=120)
    serve_growth = vm_hwm_kib(srv.pid()) - serve_before
    body = msgs[1][1]
    assert len(body) > SIZE_MB * 1024 * 1024

    def dnsfunc(name, timeout=5):  # type: ignore[no-untyped-def]
        res = dns.resolver.Resolver(configure=False)
        res.nameservers, res.port = ["127.0.0.1"], dns_server.port
        return b"".join(b"".join(r.strings) for r in res.resolve(name.decode().rstrip("."), "TXT"))

    assert dkim.verify(body, dnsfunc=dnsfunc)
    print(
        f"inject peak RSS: {small_peak // 1024} MiB small, {big_peak // 1024} MiB for {SIZE_MB} MB; serve +{serve_growth // 1024} MiB"
    )
    assert big_peak - small_peak < 10 * 1024, (small_peak, big_peak)
    assert serve_growth < 10 * 1024, serve_growth
