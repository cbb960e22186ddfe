"""Issue 5 on arm64: the generic UEFI arm64 image boots in ``qemu-system-aarch64 -M virt``
(TCG, AAVMF, 1 GB, cortex-a72 — the Raspberry Pi 4's core), shows its setup code on the boot
partition and the console, is claimed over HTTP, carries mail from SMTP submission to IMAPS, and
opens owner recovery on a 10 s button hold.

Opt-in (an arm64 build under qemu-user takes ~30-60 min here, too long for CI):
``make image-test-arm64`` builds ``ARCH=arm64`` and runs this with ``GK_IMAGE_ARM64`` set.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from gkqemu import Guest
from gkwizard import Browser
from test_image_boot import (
    BOOT_TIMEOUT,
    figure,
    guest_memory,
    read_mail,
    run_wizard,
    send_mail,
    setup_code_from_boot_partition,
    wait_http,
)

pytestmark = [pytest.mark.timeout(5400)]


def test_arm64_boot_claim_mail_button(tmp_path: Path) -> None:
    image = Path(os.environ["GK_IMAGE_ARM64"])
    assert image.exists(), f"GK_IMAGE_ARM64={image}: no such image (make image ARCH=arm64)"
    xz = image.with_name(image.name + ".xz")
    if xz.exists():
        figure(f"arm64 image {xz.name}: {xz.stat().st_size / 1e6:.0f} MB xz (target <= 350 MB)")
    guest = Guest(image, tmp_path, arch="arm64")
    try:
        guest.start()
        t_wizard, status = wait_http(guest, "/wizard/claim", BOOT_TIMEOUT * 2)
        figure(f"arm64 first boot to wizard: {t_wizard:.0f} s under TCG (HTTP {status})")
        assert status == 200, f"wizard claim page: HTTP {status}"
        code = setup_code_from_boot_partition(guest)
        assert code in guest.serial(), "the setup code was not shown on the console"
        run_wizard(
            Browser(f"http://127.0.0.1:{guest.ports['http']}", f"https://127.0.0.1:{guest.ports['https']}"), code
        )
        guest.wait_banner("submission", b"220", 300)
        subject, marker = f"arm64 test {uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        send_mail(guest, subject, marker)
        assert marker.encode() in read_mail(guest, subject)
        mem = guest_memory(guest)
        figure(f"arm64 guest memory: {mem.get('total_mb', 0) - mem.get('available_mb', 0)} MB used, "
               f"GK RSS {mem.get('gk_rss_mb')} MB")  # fmt: skip
        guest.monitor("sendkey f12 11000")
        guest.wait_serial(r"owner recovery open", 300)
        assert setup_code_from_boot_partition(guest, 300, not_this=code) != code
    finally:
        guest.kill()
