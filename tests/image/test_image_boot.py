"""Issue 5, end to end: the x86-64 image boots in QEMU and is claimed, used, rebooted and
recovered from the host, as a person would — setup code from the boot partition (mtools, no
mount), wizard over HTTP, mail over SMTP submission and IMAPS, reboot, button hold.

Issue 9 §5, the image boots clean: after first boot, after the wizard, after a reboot and after
owner recovery no systemd unit has failed and the system is "running", not "degraded" (Home
Assistant OS's image CI checks the same); the FAT boot partition is mounted read-only and not
marked dirty (what a power cut at that moment would leave); a time zone saved on
/admin/settings reaches the guest's /etc/localtime and timedatectl at once. The guest is asked
over the test-only probe port of its disk copy (gkqemu.Guest(probe=True)).

Issue 14 §6, the assistant in the image: the tests' tiny GGUF, copied to the boot partition's
gk-models/ folder before the first boot, is imported on /admin/models, made the assistant's model,
and answers a user on /assistant through the page's SSE stream (tests/image/gkassistant.py); after
the reboot no model is loaded (llama.cpp not mapped into GK) while the idle memory is measured.

Prints the figures the issues ask for: boot-to-wizard seconds (TCG), image size (asserted within
its 350 MB target) and the llama-cpp-python wheel's size, memory used in the guest and GK's RSS
(from the admin's /api/status), the assistant's import and first-answer times.
"""

from __future__ import annotations

import datetime as dt
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
import zoneinfo
from email.message import EmailMessage
from pathlib import Path

import pytest
from gkapps import caldav_create, caldav_find, guest_token, irc_history, irc_post, mcp_tools
from gkassistant import ask, import_and_use, llama_mapped, put_model_on_boot_partition, visible_text
from gkqemu import Guest
from gkwizard import Browser
from support import tinygguf

# The bound is on the test, not on the image build in the gk_image fixture: a cold build after a
# package change took 49 min here at load average ~20, and the boot test then had no time left.
pytestmark = [pytest.mark.timeout(3600, func_only=True)]

ADMIN, ADMIN_PW = "admin@example.test", "Admin-Passw0rd-long"
BOB, BOB_PW = "bob@example.test", "Bob-Passw0rd-long-2"
# TCG on a shared 2-core machine: a first boot takes ~2-4 min; these bounds only stop a hung guest.
BOOT_TIMEOUT = float(os.environ.get("GK_IMAGE_BOOT_TIMEOUT", "900"))
CODE_RE = re.compile(r"GK setup code: ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "image"
IMAGE_XZ_TARGET_MB = 350


def unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the box's certificate is self-signed until the owner adds one
    return ctx


def figure(line: str) -> None:
    print(f"IMAGE FIGURE: {line}", file=sys.stderr)


def browser(guest: Guest) -> Browser:
    """A client of the guest's web UI through QEMU's forwards. The HTTPS base matters: the
    wizard's plain-HTTP page links to the guest's own port 443, not where QEMU forwards it."""
    return Browser(f"http://127.0.0.1:{guest.ports['http']}", f"https://127.0.0.1:{guest.ports['https']}")


def wait_http(guest: Guest, path: str, timeout: float) -> tuple[float, int]:
    """Seconds from QEMU start until GK's web server answers ``path`` (any HTTP status)."""
    deadline = time.monotonic() + timeout
    b = browser(guest)  # (a client without the HTTPS base followed the page's link and timed out)
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
    """The message over IMAPS. Once (1 of 6 runs, 2026-11-29) the guest's IMAP server closed the
    session at its first SELECT (EOF) while the message was being delivered; the cause is not
    found yet. A dropped session is retried on a new connection, and the gk journal is printed,
    so the next run that meets it shows the server's side."""
    for attempt in range(3):
        try:
            return _read_mail(guest, subject)
        except (imaplib.IMAP4.abort, ssl.SSLError, OSError) as exc:
            _, journal = guest.sh("journalctl -u gk.service --no-pager -n 80")
            print(f"\nIMAP session dropped ({exc}); gk journal tail:\n{journal}", file=sys.stderr)
            figure(f"IMAP session dropped at attempt {attempt + 1}: {exc}")
            if attempt == 2:
                raise
            time.sleep(5)
    raise AssertionError("unreachable")


def _read_mail(guest: Guest, subject: str) -> bytes:
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


def assert_boots_clean(guest: Guest, when: str) -> None:
    """No failed unit and a "running" system (after start-up finished), and the FAT boot
    partition read-only and clean, as a power cut now would leave it."""
    _, state = guest.sh("systemctl is-system-running --wait")
    _, failed = guest.sh("systemctl --failed --no-legend --plain --full")
    if state.strip() != "running" or failed.strip():
        _, detail = guest.sh(
            "for u in $(systemctl --failed --no-legend --plain | awk '{print $1}'); do "
            'systemctl status --no-pager --full -n 15 "$u"; done; systemctl list-jobs --no-pager'
        )
        raise AssertionError(f"{when}: system {state.strip()!r}, failed units:\n{failed}\n{detail}")
    _, options = guest.sh("findmnt -no OPTIONS /boot/efi")
    assert options.split(",")[0] == "ro", f"{when}: the boot partition is mounted {options!r}, not read-only"
    deadline = time.monotonic() + 60  # a writer (first boot, recovery) may be finishing its write
    while guest.boot_partition_dirty() and time.monotonic() < deadline:
        time.sleep(2)
    assert not guest.boot_partition_dirty(), f"{when}: the FAT boot partition is marked dirty on disk"
    figure(f"{when}: system running, no failed unit, boot partition read-only and clean")


def guest_time_zone(guest: Guest) -> str:
    """The zone /etc/localtime links to, the one timedatectl shows, and the abbreviation ``date`` prints."""
    _, out = guest.sh("readlink /etc/localtime | sed 's|.*zoneinfo/||'; timedatectl show -p Timezone --value; date +%Z")
    return out


def set_time_zone(admin: Browser, guest: Guest, zone: str) -> None:
    """Save ``zone`` on /admin/settings; the guest's clock must follow within a minute."""
    abbreviation = dt.datetime.now(zoneinfo.ZoneInfo(zone)).strftime("%Z")
    status, location, body = admin.submit("/admin/settings", {"timezone": zone}, action="/admin/settings")
    # post/redirect/get: the saved message is on the page the 303 leads to
    assert status == 303, f"/admin/settings {zone}: {status} {location} {body[:300]}"
    status, _, body = admin.request("/" + location.split("/", 3)[-1] if location.startswith("http") else location)
    assert status == 200 and "Time zone saved." in body, f"/admin/settings {zone}: {status} {body[:300]}"
    want = f"{zone}\n{zone}\n{abbreviation}"
    deadline = time.monotonic() + 60
    while (got := guest_time_zone(guest)) != want and time.monotonic() < deadline:
        time.sleep(2)
    assert got == want, f"the time zone saved in the web UI did not reach the system: {got!r}, want {want!r}"


def admin_browser(guest: Guest) -> Browser:
    b = browser(guest)
    status, location, _ = b.submit("/login", {"address": ADMIN, "password": ADMIN_PW})
    assert status in (302, 303), f"admin web login: {status} {location}"
    return b


def guest_memory(guest: Guest) -> dict[str, int]:
    b = browser(guest)
    status, location, _ = b.submit("/login", {"address": ADMIN, "password": ADMIN_PW})
    assert status in (302, 303), f"admin web login after reboot: {status} {location}"
    status, _, body = b.request("/api/status")
    assert status == 200, f"/api/status: {status} {body[:200]}"
    doc = json.loads(body)
    mem = doc.get("memory", doc)
    top = ", ".join(f"{p['name']} {p['rss_mb']}" for p in doc.get("top_processes", []))
    figure(f"guest processes by RSS (MB): {top}")
    return {k: int(mem[k]) for k in ("total_mb", "available_mb", "gk_rss_mb") if k in mem}


def llama_wheel_figure() -> None:
    """The llama-cpp-python wheel the image was built with (image/llama/wheel.sh's cache)."""
    cache = Path(os.environ.get("GK_IMAGE_CACHE", "/var/cache/gk-image")) / "llama"
    wheels = sorted(cache.glob("*/llama_cpp_python-*-linux_x86_64.whl"), key=lambda p: p.stat().st_mtime)
    if wheels:
        figure(f"llama-cpp-python wheel {wheels[-1].name}: {wheels[-1].stat().st_size / 1e6:.1f} MB")


def test_flash_boot_claim_mail_reboot_button(gk_image: Path, tmp_path: Path) -> None:
    xz = gk_image.with_name(gk_image.name + ".xz")
    if xz.exists():
        figure(f"image {xz.name}: {xz.stat().st_size / 1e6:.0f} MB xz (target <= {IMAGE_XZ_TARGET_MB} MB)")
        assert xz.stat().st_size <= IMAGE_XZ_TARGET_MB * 1e6, f"{xz.name} exceeds {IMAGE_XZ_TARGET_MB} MB"
    llama_wheel_figure()
    guest = Guest(gk_image, tmp_path, probe=True)
    # The assistant's model without the internet: a GGUF and its .sha256 on the card's boot partition.
    gguf = tinygguf.write(tmp_path / "gk-tiny-test.gguf")
    gguf_sha = put_model_on_boot_partition(guest, gguf)
    try:
        # 1. First boot: grow root, secrets, setup code on the boot partition, wizard open.
        guest.start()
        t_wizard, status = wait_http(guest, "/wizard/claim", BOOT_TIMEOUT)
        figure(f"first boot to wizard: {t_wizard:.0f} s under TCG (HTTP {status})")
        assert status == 200, f"wizard claim page: HTTP {status}"
        code = setup_code_from_boot_partition(guest)
        assert code in guest.serial(), "the setup code was not shown on the console"
        guest.wait_serial(r"root file system: [0-9.]+G", 30)  # grown from ~1.6 GB to the 4 GB disk
        assert_boots_clean(guest, "first boot")

        # 2. Claim with the code from the card, create the admin and a second user over HTTP.
        b = browser(guest)
        run_wizard(b, code)
        status, _, _ = browser(guest).request("/wizard/claim")
        assert status in (302, 303, 403, 404), f"the claim page still answers {status} after the wizard finished"

        # 3. Mail: SMTP submission as the admin to bob, read back over IMAPS.
        subject, marker = f"image test {uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        send_mail(guest, subject, marker)
        assert marker.encode() in read_mail(guest, subject)
        # Chat, calendar and MCP, as a phone and an MCP client would (issues 12, 13, 15): a message
        # over IRC with TLS and SASL through the guest's firewall (port 6697), an event over CalDAV,
        # the tools over /mcp with a token made in the guest by `gk token add`.
        chat_text = f"hello from the image test {marker[:8]} \u00e9t\u00e9"
        chat_id = irc_post(guest, ADMIN, ADMIN_PW, "general", chat_text)
        event_summary = f"image test event {marker[:8]}"
        caldav_create(guest, BOB, BOB_PW, f"image-{marker}", event_summary)
        assert caldav_find(guest, BOB, BOB_PW) == [event_summary]
        tools = mcp_tools(guest, guest_token(guest, BOB))
        figure(f"MCP tools listed in the guest: {len(tools)} ({', '.join(sorted(tools)[:6])}…)")
        assert "mail_search" in tools, tools
        # The assistant (issue 14): import the boot partition's GGUF, use it, a streamed answer.
        took = import_and_use(admin_browser(guest), guest, gguf.name, gguf_sha)
        figure(
            f"assistant: {gguf.name} ({gguf.stat().st_size / 1e6:.1f} MB) imported from the boot partition in {took:.0f} s"
        )
        bob = browser(guest)
        status, location, _ = bob.submit("/login", {"address": BOB, "password": BOB_PW})
        assert status in (302, 303), f"bob's web login: {status} {location}"
        answer = ask(bob, "hello, what is in my mail?")
        texts, done = answer.of("text"), answer.of("done")
        assert done, f"the answer's stream ended without its done event: {answer.events[-3:]}"
        final = visible_text(done[-1][2])
        assert len(texts) >= 2, f"the answer did not stream (text events: {len(texts)}); done: {final[:300]}"
        assert visible_text(texts[-1][2]), f"an empty answer; done: {final[:300]}"
        assert 'class="note' not in done[-1][2], f"the answer ended with a note: {final[:300]}"
        figure(f"assistant answer streamed: {len(texts)} SSE text events, first after {texts[0][0]:.1f} s (model "
               f"loaded on first use), done after {done[-1][0]:.1f} s; {len(visible_text(texts[-1][2]))} characters")  # fmt: skip
        assert_boots_clean(guest, "after the wizard")
        # The time zone saved in the web UI reaches the system clock at once, twice in a row.
        admin = admin_browser(guest)
        set_time_zone(admin, guest, "Asia/Tokyo")
        set_time_zone(admin, guest, "Europe/Paris")
        assert_boots_clean(guest, "after two time zone changes")

        # 4. Reboot (ACPI power button, fresh QEMU): mail and accounts are still there.
        guest.powerdown()
        guest.start()
        t_second, _ = wait_http(guest, "/login", BOOT_TIMEOUT)
        guest.wait_banner("submission", b"220", 120)
        figure(f"second boot to web: {t_second:.0f} s")
        assert marker.encode() in read_mail(guest, subject), "the mail did not survive the reboot"
        assert guest.read_boot_file("GK-SETUP.txt") is None, "a claimed box still has a setup code on its card"
        assert_boots_clean(guest, "after a reboot")
        assert "Europe/Paris" in guest_time_zone(guest), "the time zone did not survive the reboot"
        time.sleep(20)  # let the system settle before measuring idle memory
        mem = guest_memory(guest)
        # Idle means no model loaded: llama.cpp is imported on the first question, not at start.
        assert llama_mapped(guest) == 0, "gk.service has llama.cpp mapped after a reboot with no question asked"
        used = mem.get("total_mb", 0) - mem.get("available_mb", 0)
        figure(f"guest memory idle: {used} MB used of {mem.get('total_mb')} MB (target <= 200), GK RSS "
               f"{mem.get('gk_rss_mb')} MB (target <= 60)")  # fmt: skip
        # Measured 121 MB (docs/image.md, memory); 258 MB with transparent hugepages on.
        assert 0 < used <= 200, f"the idle guest uses {used} MB (target <= 200): tests/image/memdiag.py says where"
        # What was written before the reboot is still there: the chat message (history replayed
        # to another user's new device, and `gk chat history`) and the calendar event.
        history = irc_history(guest, BOB, BOB_PW, "general")
        assert any(f"msgid={chat_id}" in ln and ln.endswith(chat_text) for ln in history), history
        _, cli = guest.sh("runuser -u gk -- env GK_DATA_DIR=/var/lib/gk /opt/gk/bin/gk chat history general")
        assert f"<admin> {chat_text}" in cli, cli
        assert caldav_find(guest, BOB, BOB_PW) == [event_summary], "the CalDAV event did not survive the reboot"
        figure("after the reboot: the IRC message is in the chat history, the CalDAV event in the calendar")
        # /api/status (called above) reports the listeners without a TLS handshake left half-open.
        _, tracebacks = guest.sh("journalctl -b -u gk.service --no-pager -o cat | grep -c Traceback")
        assert tracebacks.strip() == "0", f"gk.service logged {tracebacks.strip()} tracebacks this boot"

        # 5. Button held 11 s (QEMU sendkey with a hold time): owner recovery reopens the claim step.
        guest.monitor("sendkey f12 11000")
        guest.wait_serial(r"owner recovery open", 120)
        new_code = setup_code_from_boot_partition(guest, 120, not_this=code)
        rb = browser(guest)
        status, location, _ = rb.submit("/wizard/claim", {"code": new_code})
        assert status in (302, 303) and location.endswith("/wizard/password"), f"recovery claim: {status} {location}"
        assert_boots_clean(guest, "after owner recovery")  # the new code was written, read-only again
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for log in tmp_path.glob("serial-*.log"):
            shutil.copy(log, ARTIFACTS / log.name)
        raise
    finally:
        guest.kill()
