"""The assistant's MCP client (``gk.mcp.client``) against the official ``mcp`` SDK's client: the
RSS a process gains to list the tools of an MCP server on loopback, each in a fresh Python
process (the server: a stdlib HTTP server in a thread answering initialize and tools/list as
JSON, the same for both).

    .venv/bin/python -m bench mcp_client
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMON = r"""
import json, threading, resource
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

TOOLS = [{"name": f"tool{i}", "description": "a tool", "inputSchema": {"type": "object"},
          "annotations": {"readOnlyHint": True}} for i in range(20)]

class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        msg = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "id" not in msg:
            self.send_response(202); self.end_headers(); return
        if msg["method"] == "initialize":
            result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                      "serverInfo": {"name": "bench", "version": "1"}}
        else:
            result = {"tools": TOOLS}
        body = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
URL = f"http://127.0.0.1:{srv.server_address[1]}/mcp"
before = rss()
"""

GK = (
    COMMON
    + r"""
from gk.mcp import client
n = len(client.list_tools(URL, ""))
print(n, rss() - before)
"""
)

SDK = (
    COMMON
    + r"""
import asyncio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

async def main():
    async with streamable_http_client(URL) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            return len((await s.list_tools()).tools)

n = asyncio.run(main())
print(n, rss() - before)
"""
)


def run(code: str) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    n, mb = out.stdout.split()
    return int(n), float(mb)


def main() -> int:
    gk_runs = [run(GK) for _ in range(3)]
    sdk_runs = [run(SDK) for _ in range(3)]
    if {n for n, _ in gk_runs + sdk_runs} != {20}:
        print("a client did not list the 20 tools", gk_runs, sdk_runs)
        return 1
    gk_mb = sorted(mb for _, mb in gk_runs)[1]
    sdk_mb = sorted(mb for _, mb in sdk_runs)[1]
    print(f"RSS added to list 20 tools (median of 3 fresh processes): gk.mcp.client {gk_mb:.1f} MB, "
          f"official mcp SDK client {sdk_mb:.1f} MB; ratio gk/sdk {gk_mb / sdk_mb:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
