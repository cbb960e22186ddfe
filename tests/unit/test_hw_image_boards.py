"""image/: each target is one folder, mkosi.profiles/<target>/ (its mkosi config and its disk
layout), and one board's packages, trees and scripts never reach another board's image (issue 11
item 9: the generic arm64 UEFI packages and overlay used to leak into the Raspberry Pi images,
where runtime guards worked around them).

The configuration is resolved by mkosi itself (``mkosi --profile T --json summary``: the same
parse the build does), then the image's effective root overlay is laid out as mkosi lays it
(ExtraTrees in order, later trees win).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from support.skips import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "image"
PROFILES = IMAGE / "mkosi.profiles"
UEFI = {
    "x86-64": ("x86-64", "linux-image-amd64", "systemd-bootx64.efi"),
    "arm64": ("arm64", "linux-image-arm64", "systemd-bootaa64.efi"),
}
PI = ("rpi4", "rpi5")
UEFI_PACKAGES = {"systemd-boot-efi", "systemd-boot", "grub-efi-arm64", "grub-efi-amd64"}


@cache
def summary(target: str) -> dict[str, Any]:
    if not shutil.which("mkosi"):
        skip_or_fail("mkosi missing (make image-deps installs mkosi 24 from bookworm-backports)")
    version = subprocess.run(["mkosi", "--version"], capture_output=True, text=True).stdout.split()
    if len(version) < 2 or int(version[1].split(".")[0]) < 24:
        skip_or_fail(f"mkosi {version} is older than 24 (make image-deps)")
    r = subprocess.run(
        ["mkosi", "--profile", target, "--json", "summary"], cwd=IMAGE, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    images = json.loads(r.stdout)["Images"]
    assert len(images) == 1
    image: dict[str, Any] = images[0]
    return image


def trees(target: str) -> list[Path]:
    return [Path(t["Source"]) for t in summary(target)["ExtraTrees"]]


def overlay(target: str) -> dict[str, Path]:
    """The image's root as the ExtraTrees lay it: path in the image -> the file that wins."""
    laid: dict[str, Path] = {}
    for tree in trees(target):
        for f in sorted(tree.rglob("*")):
            if f.is_file():
                laid[str(f.relative_to(tree))] = f
    return laid


def target_env(target: str) -> dict[str, str]:
    out = {}
    for line in (PROFILES / target / "target.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value.strip('"')
    return out


def test_every_target_is_one_folder_that_build_sh_accepts() -> None:
    folders = sorted(p.name for p in PROFILES.iterdir() if p.is_dir())
    assert folders == sorted([*UEFI, *PI])
    assert not (IMAGE / "mkosi.conf.d").exists() and not (IMAGE / "targets").exists()
    for target in folders:
        assert (PROFILES / target / "mkosi.conf").is_file() and (PROFILES / target / "target.env").is_file()
        assert (IMAGE / "boot" / f"{target_env(target)['BOOT']}.sh").is_file(), target
    build = (IMAGE / "build.sh").read_text()
    assert '--profile "$target"' in build  # every build names its board: nothing board-specific is a default
    # Nothing in the shared config belongs to one board.
    common = "\n".join(ln for ln in (IMAGE / "mkosi.conf").read_text().splitlines() if not ln.startswith("#"))
    assert "[Match]" not in common and not any(p in common.split() for p in [*UEFI_PACKAGES, "raspi-firmware"])


@pytest.mark.parametrize(("env", "target"), [({"ARCH": "x86-64"}, "x86-64"), ({"ARCH": "aarch64"}, "arm64"),
                                           ({"BOARD": "rpi4"}, "rpi4"), ({"ARCH": "x86-64", "BOARD": "rpi5"}, "rpi5")])  # fmt: skip
def test_build_sh_takes_the_target_from_its_folder(env: dict[str, str], target: str) -> None:
    """As a user, build.sh stops at the root check: by then it has named the image after the target."""
    cmd = ["bash", str(IMAGE / "build.sh")]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            skip_or_fail("setpriv missing (apt-get install util-linux)")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    base = {k: v for k, v in os.environ.items() if k not in ("ARCH", "BOARD")}
    r = subprocess.run(cmd, capture_output=True, text=True, env={**base, **env, "OUT": "/nonexistent"}, timeout=60)
    assert r.returncode == 1 and "needs root" in r.stderr, r.stderr
    assert "preflight for gk-" in r.stdout and r.stdout.split("preflight for ")[1].split()[0].endswith(f"-{target}")


@pytest.mark.parametrize("target", PI)
def test_pi_images_carry_no_uefi_packages_trees_or_hooks(target: str) -> None:
    image = summary(target)
    assert image["Architecture"] == "arm64" and image["Profile"] == target
    packages = set(image["Packages"])
    assert {"linux-image-arm64", "raspi-firmware"} <= packages
    assert not packages & UEFI_PACKAGES, f"{target}: UEFI boot packages {packages & UEFI_PACKAGES}"
    assert REPO / "overlays/uefi" not in trees(target)
    assert REPO / "overlays/rpi/root" in trees(target) and REPO / "overlays" / target / "root" in trees(target)
    laid = overlay(target)
    assert not [p for p, src in laid.items() if REPO / "overlays/uefi" in src.parents]
    esp = {
        "boot/efi/.keep",
        "etc/kernel/postinst.d/zz-gk-boot-partition",
        "etc/initramfs/post-update.d/gk-boot-partition",
    }
    assert not esp & laid.keys(), f"{target}: the ESP's kernel hooks would run on a Pi"
    assert "boot/firmware/.keep" in laid
    fstab = laid["etc/fstab"].read_text()
    assert " /boot/firmware " in fstab and "/boot/efi" not in fstab
    scripts = [Path(s).name for s in image["PostInstallationScripts"]]
    assert scripts == ["mkosi.postinst.chroot", "rpi.postinst.chroot"]
    env = target_env(target)
    assert env["BOOT"] == "rpi" and env["PTABLE"] == "dos" and "EFI_BINARY" not in env


@pytest.mark.parametrize("target", sorted(UEFI))
def test_uefi_images_carry_no_raspberry_pi_parts(target: str) -> None:
    arch, kernel, loader = UEFI[target]
    image = summary(target)
    assert image["Architecture"] == arch and image["Profile"] == target
    packages = set(image["Packages"])
    assert {kernel, "systemd-boot-efi"} <= packages and "raspi-firmware" not in packages
    assert trees(target)[-1] == REPO / "overlays/uefi"
    assert not [t for t in trees(target) if t.parts[-2].startswith("rpi") or t.name.startswith("rpi")]
    laid = overlay(target)
    assert "etc/kernel/postinst.d/zz-gk-boot-partition" in laid and not any(p.startswith("boot/firmware") for p in laid)
    fstab = laid["etc/fstab"].read_text()
    assert " /boot/efi " in fstab and "/boot/firmware" not in fstab
    assert laid["etc/gk/button.env"] == REPO / "overlays/common/etc/gk/button.env"  # F12 on a PC or VM
    # GK is installed once (mkosi.postinst.chroot is a default path: naming it too ran it twice).
    assert [Path(s).name for s in image["PostInstallationScripts"]] == ["mkosi.postinst.chroot"]
    env = target_env(target)
    assert env["BOOT"] == "uefi" and env["PTABLE"] == "gpt" and env["EFI_BINARY"] == loader


def test_shared_scripts_hold_no_board_conditionals() -> None:
    """Board differences live in the board's folder, not as checks in scripts every board runs."""
    helper = REPO / "overlays/common/usr/lib/gk/boot-partition"
    for script in [IMAGE / "mkosi.postinst.chroot", IMAGE / "build.sh", IMAGE / "assemble.sh", helper]:
        text = script.read_text()
        for word in ("raspi", "rpi4", "rpi5", "systemd-boot", "/boot/efi", "/boot/firmware"):
            lines = [ln for ln in text.splitlines() if word in ln and not ln.lstrip().startswith("#")]
            assert not lines, f"{script.name} tests for a board ({word}): {lines}"
