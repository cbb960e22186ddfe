"""Issue 5, end to end: the x86-64 image boots in QEMU and is claimed, used, rebooted and
recovered from the host, as a person would — setup code from the boot partition (mtools, no
mount), wizard over HTTP, mail over SMTP submission and IMAPS, reboot, button hold.

Prints the figures the issue asks for: boot-to-wizard seconds (TCG), image size, memory used in
the guest and GK's RSS (from the admin's /api/status).
"""

from __future__ import annotations

import imaplib
import json
import os
import re
import shutil
import smtplib
import ssl
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest
from gkqemu import Guest
from gkwizard import Browser

pytestmark = [pytest.mark.timeout(3600)]

ADMIN, ADMIN_PW = "admin@example.test", "Admin-Passw0rd-long"
BOB, BOB_PW = "bob@example.test", "Bob-Passw0rd-long-2"
# TCG on a shared 2-core machine: a first boot takes ~2-4 min; these bounds only stop a hung guest.
BOOT_TIMEOUT = float(os.environ.get("GK_IMAGE_BOOT_TIMEOUT", "900"))
CODE_RE = re.compile(r"GK setup code: ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "image"


def unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the box's certificate is self-signed until the owner adds one
    return ctx


def figure(line: str) -> None:
    print(f"IMAGE FIGURE: {line}", file=sys.stderr)


def wait_http(guest: Guest, path: str, timeout: float) -> tuple[float, int]:
    """Seconds from QEMU start until GK's web server answers ``path`` (any HTTP status)."""
    deadline = time.monotonic() + timeout
    b = Browser(f"http://127.0.0.1:{guest.ports['http']}")
    while time.monotonic() < deadline:
        assert guest.alive(), f"QEMU exited; serial tail:\n{guest.serial()[-3000:]}"
        try:
            status, _, _ = b.request(path)
            return time.monotonic() - guest.started_at, status
        except OSError:
            time.sleep(2)
    raise AssertionError(f"no HTTP answer on {path} within {timeout:.0f}s; serial tail:\n{guest.serial()[-3000:]}")


def setup_code_from_boot_partition(guest: Guest, timeout: float = 120, not_this: str = "") -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = guest.read_boot_file("GK-SETUP.txt")
        m = CODE_RE.search(data.decode(errors="replace")) if data else None
        if m and m.group(1) != not_this:
            return m.group(1)
        time.sleep(2)
    raise AssertionError(f"GK-SETUP.txt on the boot partition has no (new) setup code: {data!r}")


def run_wizard(b: Browser, code: str) -> None:
    status, location, body = b.submit("/wizard/claim", {"code": "ABCD-EFGH-JKMN"})
    assert status == 400 and "/wizard/admin" not in location, f"a wrong setup code was accepted: {status} {location}"
    status, location, _ = b.submit("/wizard/claim", {"code": code.lower()})
    assert status in (302, 303) and location.endswith("/wizard/admin"), (
        f"claim with the right code: {status} {location}"
    )
    values = {
        "/wizard/admin": {"address": ADMIN, "password": ADMIN_PW, "password2": ADMIN_PW},
        "/wizard/host": {"hostname": "mail.example.test", "domain": "example.test"},
        "/wizard/users": {"address": BOB, "password": BOB_PW, "password2": BOB_PW},
    }
    step, seen = "/wizard/admin", []
    for _ in range(20):
        seen.append(step)
        extra = values.get(step, {})
        if step == "/wizard/users":
            status, location, body = b.submit(step, extra)
            assert status in (200, 302, 303), f"adding {BOB} in the wizard: {status} {body[:300]}"
            extra = {"action": "continue"}
        action, fields = b.form(step)
        fields.pop("https_redirect", None)  # stay on plain HTTP: the test has no trusted certificate
        fields.update(extra)
        status, location, body = b.request(action, fields)
        assert status in (302, 303), f"wizard step {step}: {status} {body[:500]}"
        path = "/" + location.split("/", 3)[-1] if location.startswith("http") else location
        if not path.startswith("/wizard/"):
            break
        assert path != step, f"wizard step {step} did not advance (steps so far {seen})"
        step = path
    else:
        raise AssertionError(f"wizard never finished: {seen}")


def send_mail(guest: Guest, subject: str, marker: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ADMIN, BOB, subject
    msg.set_content(f"hello from the image test {marker}\n")
    with smtplib.SMTP("127.0.0.1", guest.ports["submission"], timeout=120) as s:
        s.starttls(context=unverified())
        s.login(ADMIN, ADMIN_PW)
        s.send_message(msg)


def read_mail(guest: Guest, subject: str) -> bytes:
    deadline = time.monotonic() + 60
    with imaplib.IMAP4_SSL("127.0.0.1", guest.ports["imaps"], ssl_context=unverified(), timeout=120) as m:
        m.login(BOB, BOB_PW)
        while True:
            m.select("INBOX")
            _, data = m.search(None, "SUBJECT", f'"{subject}"')
            ids = data[0].split()
            if ids or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert ids, f"no message {subject!r} in {BOB}'s INBOX"
        _, fetched = m.fetch(ids[-1], "(RFC822)")
        return fetched[0][1]  # type: ignore[index]


def guest_memory(guest: Guest) -> dict[str, int]:
    b = Browser(f"http://127.0.0.1:{guest.ports['http']}")
    status, location, _ = b.submit("/login", {"address": ADMIN, "password": ADMIN_PW})
    assert status in (302, 303), f"admin web login after reboot: {status} {location}"
    status, _, body = b.request("/api/status")
    assert status == 200, f"/api/status: {status} {body[:200]}"
    doc = json.loads(body)
    mem = doc.get("memory", doc)
    top = ", ".join(f"{p['name']} {p['rss_mb']}" for p in doc.get("top_processes", []))
    figure(f"guest processes by RSS (MB): {top}")
    return {k: int(mem[k]) for k in ("total_mb", "available_mb", "gk_rss_mb") if k in mem}


def test_flash_boot_claim_mail_reboot_button(gk_image: Path, tmp_path: Path) -> None:
    xz = gk_image.with_name(gk_image.name + ".xz")
    if xz.exists():
        figure(f"image {xz.name}: {xz.stat().st_size / 1e6:.0f} MB xz (target <= 350 MB)")
    guest = Guest(gk_image, tmp_path)
    try:
        # 1. First boot: grow root, secrets, setup code on the boot partition, wizard open.
        guest.start()
        t_wizard, status = wait_http(guest, "/wizard/claim", BOOT_TIMEOUT)
        figure(f"first boot to wizard: {t_wizard:.0f} s under TCG (HTTP {status})")
        assert status == 200, f"wizard claim page: HTTP {status}"
        code = setup_code_from_boot_partition(guest)
        assert code in guest.serial(), "the setup code was not shown on the console"
        guest.wait_serial(r"root file system: [0-9.]+G", 30)  # grown from ~1.6 GB to the 4 GB disk

        # 2. Claim with the code from the card, create the admin and a second user over HTTP.
        b = Browser(f"http://127.0.0.1:{guest.ports['http']}", f"https://127.0.0.1:{guest.ports['https']}")
        run_wizard(b, code)
        status, _, _ = Browser(f"http://127.0.0.1:{guest.ports['http']}").request("/wizard/claim")
        assert status in (302, 303, 403, 404), f"the claim page still answers {status} after the wizard finished"

        # 3. Mail: SMTP submission as the admin to bob, read back over IMAPS.
        subject, marker = f"image test {uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        send_mail(guest, subject, marker)
        assert marker.encode() in read_mail(guest, subject)

        # 4. Reboot (ACPI power button, fresh QEMU): mail and accounts are still there.
        guest.powerdown()
        guest.start()
        t_second, _ = wait_http(guest, "/login", BOOT_TIMEOUT)
        guest.wait_banner("submission", b"220", 120)
        figure(f"second boot to web: {t_second:.0f} s")
        assert marker.encode() in read_mail(guest, subject), "the mail did not survive the reboot"
        assert guest.read_boot_file("GK-SETUP.txt") is None, "a claimed box still has a setup code on its card"
        time.sleep(20)  # let the system settle before measuring idle memory
        mem = guest_memory(guest)
        used = mem.get("total_mb", 0) - mem.get("available_mb", 0)
        figure(f"guest memory idle: {used} MB used of {mem.get('total_mb')} MB (target <= 200), GK RSS "
               f"{mem.get('gk_rss_mb')} MB (target <= 60)")  # fmt: skip
        # Measured 121 MB (docs/image.md, memory); 258 MB with transparent hugepages on.
        assert 0 < used <= 200, f"the idle guest uses {used} MB (target <= 200): tests/image/memdiag.py says where"

        # 5. Button held 11 s (QEMU sendkey with a hold time): owner recovery reopens the claim step.
        guest.monitor("sendkey f12 11000")
        guest.wait_serial(r"owner recovery open", 120)
        new_code = setup_code_from_boot_partition(guest, 120, not_this=code)
        rb = Browser(f"http://127.0.0.1:{guest.ports['http']}", f"https://127.0.0.1:{guest.ports['https']}")
        status, location, _ = rb.submit("/wizard/claim", {"code": new_code})
        assert status in (302, 303) and location.endswith("/wizard/password"), f"recovery claim: {status} {location}"
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for log in tmp_path.glob("serial-*.log"):
            shutil.copy(log, ARTIFACTS / log.name)
        raise
    finally:
        guest.kill()
