"""The private assistant in the booted image (issue 14 §6), used as its owner would: a GGUF copied
to the boot partition's ``gk-models`` folder with its ``.sha256`` (what /admin/models tells the
owner to do without the internet) is listed there, imported (sha256-checked by GK) and made the
assistant's model; a user then asks on /assistant and reads the answer streamed over the page's
server-sent events endpoint (what htmx's SSE extension opens in the browser).

The model is the tests' tiny random-weight GGUF (tests/support/tinygguf.py, ~0.5 MB): gibberish,
but llama-cpp-python's portable wheel (image/llama/wheel.sh) loads and runs it in the guest.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from gkqemu import BOOT_PART_OFFSET, Guest
from gkwizard import Browser

OFFLINE_DIR = "/boot/efi/gk-models"  # overlays/uefi/etc/fstab mounts the boot partition at /boot/efi
MODELS_DIR = "/var/lib/gk/models"


def put_model_on_boot_partition(guest: Guest, gguf: Path) -> str:
    """Copy ``gguf`` and its ``.sha256`` to ``gk-models/`` on the (stopped) guest's boot partition,
    with mtools as a PC would write the SD card; returns the file's sha256."""
    assert not guest.alive(), "write the boot partition while the guest is off"
    sha = hashlib.sha256(gguf.read_bytes()).hexdigest()
    side = gguf.with_name(gguf.name + ".sha256")
    side.write_text(f"{sha}  {gguf.name}\n")
    img = f"{guest.disk}@@{BOOT_PART_OFFSET}"
    subprocess.run(["mmd", "-i", img, "::gk-models"], check=False, capture_output=True)
    for f in (gguf, side):
        subprocess.run(["mcopy", "-o", "-i", img, str(f), f"::gk-models/{f.name}"], check=True)
    return sha


def import_and_use(admin: Browser, guest: Guest, name: str, sha: str, timeout: float = 300) -> float:
    """Import ``name`` from the boot partition on /admin/models and make it the assistant's model;
    returns the seconds the import took."""
    path = f"{OFFLINE_DIR}/{name}"
    forms = admin.post_forms("/admin/models")
    offered = [f for a, f in forms if a == "/admin/models/pull" and f.get("offline") == path]
    assert offered, f"/admin/models offers no import of {path}: {[f.get('offline') for _, f in forms]}"
    t0 = time.monotonic()
    status, location, body = admin.request("/admin/models/pull", offered[0])
    assert status == 303, f"import {path}: {status} {location} {body[:300]}"
    deadline = time.monotonic() + timeout
    while True:
        removable = [
            f for a, f in admin.post_forms("/admin/models") if a == "/admin/models/remove" and f.get("file") == name
        ]
        if removable:
            break
        assert time.monotonic() < deadline, f"{name} was not installed within {timeout:.0f}s"
        time.sleep(2)
    took = time.monotonic() - t0
    _, out = guest.sh(f"sha256sum {MODELS_DIR}/{name}; stat -c '%U %a' {MODELS_DIR}/{name}")
    assert out.split()[0] == sha, f"the installed model's sha256 differs: {out}"
    status, location, body = admin.request("/admin/models/use", removable[0])  # same CSRF fields, file=name
    assert status == 303, f"use {name}: {status} {location} {body[:300]}"
    status, _, page = admin.request("/admin/models")
    assert status == 200 and re.search(rf"{re.escape(name)}\s*<strong>", page), f"{name} is not shown in use"
    return took


@dataclass
class Answer:
    conversation: int
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (seconds since asking, event, data)

    def of(self, name: str) -> list[tuple[float, str, str]]:
        return [e for e in self.events if e[1] == name]


def ask(user: Browser, question: str, timeout: float = 900) -> Answer:
    """Start a conversation with ``question`` on /assistant and read its answer's SSE stream."""
    status, location, body = user.submit("/assistant", {"message": question}, action="/assistant/new")
    m = re.search(r"/assistant/c/(\d+)$", location)
    assert status == 303 and m, f"/assistant/new: {status} {location} {body[:300]}"
    answer = Answer(int(m.group(1)))
    req = urllib.request.Request(
        f"{user.base}/assistant/c/{answer.conversation}/stream", headers={"Accept": "text/event-stream"}
    )
    t0 = time.monotonic()
    with user.opener.open(req, timeout=timeout) as r:
        assert r.status == 200 and r.headers.get_content_type() == "text/event-stream", (
            f"stream: {r.status} {r.headers.get('Content-Type')}"
        )
        name, data = "", []
        for raw in r:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and name:
                answer.events.append((time.monotonic() - t0, name, "\n".join(data)))
                if name == "done":
                    break
                name, data = "", []
    return answer


def visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def llama_mapped(guest: Guest) -> int:
    """How many of gk.service's memory mappings are llama.cpp's libraries (0: no model loaded)."""
    _, out = guest.sh("grep -c libllama /proc/$(systemctl show -p MainPID --value gk.service)/maps || true")
    return int(out.strip().splitlines()[-1])
