"""Issue 10 §2 in the image: a headless first boot. A ``GK-SETUP.toml`` written on the card's
FAT boot partition (with mtools, as a PC would) sets the box up at its first boot without a
browser: applied by the first-boot script before GK starts, then deleted (it holds the admin's
password); no setup code is published; the wizard is closed; the admin and the user it names
send and read mail over SMTP submission and IMAPS; the time zone it names reaches the system;
the system boots clean (no failed unit, the boot partition read-only and clean).

One more first boot under TCG (~2-4 min in CI) on the image the boot test built (session fixture).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest
from gkqemu import BOOT_PART_OFFSET, Guest
from test_image_boot import (
    ADMIN,
    ADMIN_PW,
    BOB,
    BOB_PW,
    BOOT_TIMEOUT,
    CODE_RE,
    assert_boots_clean,
    browser,
    figure,
    guest_time_zone,
    read_mail,
    send_mail,
    wait_http,
)

pytestmark = [pytest.mark.timeout(1800, func_only=True)]

ANSWERS = f"""\
[admin]
address = "{ADMIN}"
password = "{ADMIN_PW}"
[host]
hostname = "mail.example.test"
domain = "example.test"
timezone = "Europe/Paris"
https_redirect = false
[outgoing]
mode = "direct"
[ai]
model = "none"
[[users]]
address = "{BOB}"
password = "{BOB_PW}"
"""


def test_gk_setup_toml_sets_the_box_up_at_first_boot(gk_image: Path, tmp_path: Path) -> None:
    guest = Guest(gk_image, tmp_path, probe=True)
    answers = tmp_path / "GK-SETUP.toml"
    answers.write_text(ANSWERS.replace("\n", "\r\n"))  # as Notepad would save it
    subprocess.run(
        ["mcopy", "-o", "-i", f"{guest.disk}@@{BOOT_PART_OFFSET}", str(answers), "::GK-SETUP.toml"], check=True
    )
    assert guest.read_boot_file("GK-SETUP.toml") is not None
    try:
        guest.start()
        t_up, status = wait_http(guest, "/login", BOOT_TIMEOUT)
        figure(f"headless first boot (GK-SETUP.toml) to the web UI: {t_up:.0f} s under TCG (HTTP {status})")
        assert guest.read_boot_file("GK-SETUP-ERRORS.txt") is None, guest.read_boot_file("GK-SETUP-ERRORS.txt")
        assert guest.read_boot_file("GK-SETUP.toml") is None, (
            "GK-SETUP.toml (the admin's password) is still on the card"
        )
        published = guest.read_boot_file("GK-SETUP.txt") or b""
        assert not CODE_RE.search(published.decode(errors="replace")), f"a setup code was published: {published!r}"
        status, location, _ = browser(guest).request("/wizard/claim")
        assert status in (302, 303, 403, 404), f"the wizard still answers {status} {location} after GK-SETUP.toml"
        subject, marker = f"headless image test {uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        send_mail(guest, subject, marker)  # the admin and the user the file named
        assert marker.encode() in read_mail(guest, subject)
        deadline = time.monotonic() + 120
        while "Europe/Paris" not in (zone := guest_time_zone(guest)) and time.monotonic() < deadline:
            time.sleep(2)
        assert "Europe/Paris" in zone, f"the time zone of GK-SETUP.toml did not reach the system: {zone!r}"
        assert_boots_clean(guest, "headless first boot")
    finally:
        guest.kill()
