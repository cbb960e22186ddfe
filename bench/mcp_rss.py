"""MCP memory: GK's idle RSS with ``[mcp] enabled`` against the same GK with it off (median of
RUNS starts each, every other feature at its default), and the RSS after a first session of
tool calls (the token table opened, each of the four tools run 25 times over a one-message INBOX).

Target (issue 15): the MCP server must not cost what the official SDK would as a server (~45 MB,
as much as GK idle); a few hundred KB idle. RSS is read from /proc/PID/status after SETTLE s.
Run: ``.venv/bin/python -m bench mcp_rss`` (BENCH_MCP_RUNS to change RUNS).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import tomli_w

from bench._ports import free_port

GK_CMD = [sys.executable, "-m", "gk"]
USER = "bench@bench.example"
RUNS = int(os.environ.get("BENCH_MCP_RUNS", "3"))
SETTLE = 4.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def gk(data: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [*GK_CMD, *args, "--data-dir", str(data)], input=stdin, text=True, check=True, capture_output=True
    ).stdout


class GK:
    def __init__(self, data: Path, mcp: bool):
        self.data = data
        self.http = free_port()
        cfg = {
            "server": {"bind": "127.0.0.1", "hostname": "bench.example"},
            "http": {"port": self.http, "https_port": 0},
            "smtp": {"port": free_port(), "submission_port": 0, "submissions_port": 0},
            "imap": {"port": 0, "tls_port": free_port()},
            "chat": {"irc_port": free_port()},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
            "mcp": {"enabled": mcp},
        }
        data.mkdir(parents=True)
        (data / "gk.toml").write_text(tomli_w.dumps(cfg))
        gk(data, "user", "add", USER, "--password-stdin", stdin="bench password 1234\n")
        from gk import claim

        claim.complete(data)
        self.token = gk(data, "token", "add", USER, "--scope", "mcp").strip()
        new = data / "mail" / USER / "Maildir" / "new"
        new.mkdir(parents=True)
        body = "A line of the body, long enough to be read.\r\n" * 200
        (new / "1.bench.eml").write_text(f"From: a@b.example\r\nTo: {USER}\r\nSubject: bench x1\r\n\r\n{body}")
        self.log = open(data / "serve.log", "wb")
        self.proc = subprocess.Popen([*GK_CMD, "serve", "--data-dir", str(data)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while b"ready in" not in (data / "serve.log").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data / "serve.log").read_text())
            time.sleep(0.1)

    def call(self, method: str, params: dict) -> dict:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http}/mcp",
            body,
            {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def main() -> int:
    idle: dict[bool, list[float]] = {False: [], True: []}
    used: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(RUNS):
            for mcp in (False, True):
                srv = GK(Path(tmp) / f"{run}-{mcp}", mcp)
                try:
                    time.sleep(SETTLE)
                    idle[mcp].append(rss_mb(srv.proc.pid))
                    if mcp:
                        srv.call("initialize", {"protocolVersion": "2025-11-25"})
                        for i in range(25):
                            srv.call("tools/call", {"name": "mail_list_folders", "arguments": {}})
                            srv.call("tools/call", {"name": "mail_list_unread", "arguments": {}})
                            srv.call("tools/call", {"name": "mail_search", "arguments": {"text": f"x{i}"}})
                            srv.call("tools/call", {"name": "mail_read", "arguments": {"folder": "INBOX", "uid": 1}})
                        time.sleep(SETTLE)
                        used.append(rss_mb(srv.proc.pid))
                finally:
                    srv.stop()
    off, on = statistics.median(idle[False]), statistics.median(idle[True])
    print(f"gk serve idle RSS, median of {RUNS}: [mcp] off {off:.1f} MB, on {on:.1f} MB ({on - off:+.1f} MB)")
    print(f"  runs off {[round(x, 1) for x in idle[False]]}, on {[round(x, 1) for x in idle[True]]}")
    print(f"after 100 tools/call: {statistics.median(used):.1f} MB ({statistics.median(used) - on:+.1f} MB over idle)")
    return 0
