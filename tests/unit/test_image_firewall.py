"""The image's firewall (overlays/common/etc/nftables.conf, loaded by nftables.service) opens
every port `gk serve` listens on with its default gk.toml — the image's ports, IRC's 6697
among them — and nothing it does not serve; the service is enabled wherever the image says
what runs (preset and post-install script), and the package is in the image. The booted image
test (tests/image) reaches each of them through the guest's firewall."""

from __future__ import annotations

import re
from pathlib import Path

from gk.config import Config

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "overlays/common/etc/nftables.conf"
LISTENERS = [
    ("http", "port"),
    ("http", "https_port"),
    ("smtp", "port"),
    ("smtp", "submission_port"),
    ("smtp", "submissions_port"),
    ("imap", "port"),
    ("imap", "tls_port"),
    ("chat", "irc_port"),
]
SSH = 22  # sshd, only when the owner turns it on (gk-ssh.path)


def open_tcp_ports() -> set[int]:
    text = RULES.read_text()
    sets = re.findall(r"^\s*tcp dport \{([^}]*)\} accept$", text, re.M)
    assert len(sets) == 1, "one set of open TCP ports"
    return {int(p) for p in sets[0].replace(",", " ").split()}


def test_every_listener_of_the_default_config_is_open_and_nothing_else() -> None:
    cfg = Config()
    wanted = {getattr(getattr(cfg, section), key) for section, key in LISTENERS} | {SSH}
    assert 6697 in wanted
    assert open_tcp_ports() == wanted


def test_default_drop_and_the_answers_to_what_the_box_starts() -> None:
    text = RULES.read_text()
    assert text.startswith("#!/usr/sbin/nft -f\n") and "flush ruleset" in text
    assert re.search(r"hook input priority filter; policy drop;", text)
    assert "ct state established,related accept" in text and 'iif "lo" accept' in text
    assert "udp dport 5353 accept" in text  # mDNS: gk.local
    assert "ip6 nexthdr icmpv6 accept" in text  # IPv6 neighbour discovery
    # the image has no /etc/protocols (no netbase): a protocol *name* nft must look up fails to load
    assert "ipv6-icmp" not in text and "l4proto icmp" not in text


def test_the_firewall_is_installed_and_enabled() -> None:
    assert re.search(r"^\s+nftables$", (REPO / "image/mkosi.conf").read_text(), re.M)
    preset = (REPO / "overlays/common/etc/systemd/system-preset/00-gk.preset").read_text().splitlines()
    assert "enable nftables.service" in preset
    assert "nftables.service" in (REPO / "image/mkosi.postinst.chroot").read_text()


def test_the_rules_load_without_etc_protocols() -> None:
    """`nft -c` (check only, nothing applied) as the image runs it: without /etc/protocols and
    /etc/services (hidden in a private mount namespace), where a protocol name fails to load."""
    import os
    import shutil
    import subprocess

    from support.skips import skip_or_fail

    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        skip_or_fail("needs root, nft (Debian nftables, installed by make image-deps) and unshare")
    hide = "mount --bind /dev/null /etc/protocols && mount --bind /dev/null /etc/services"
    r = subprocess.run(
        ["unshare", "-m", "sh", "-c", f'{hide} && nft -c -f "$0"', str(RULES)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
