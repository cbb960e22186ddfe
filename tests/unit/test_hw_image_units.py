"""The image's own systemd units, fstab and boot-partition helper, checked without booting
(issue 9 §5; tests/image/test_image_boot.py checks the same in a booted guest).

- A path unit with a state condition (PathExists=, PathExistsGlob=, DirectoryNotEmpty=) starts
  its unit again each time that unit goes inactive while the condition holds: with a oneshot
  service that does not RemainAfterExit, both fail with start-limit-hit (gk-timezone on every
  boot of a claimed box, gk-ssh once SSH was on), and later changes are never applied.
- The FAT boot partition is mounted read-only, and /usr/lib/gk/boot-partition makes it
  writable only while a write runs: a real FAT image on a loop device shows the dirty flag Linux
  sets while it is mounted read-write cleared again after every write.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT_DIRS = [REPO / "overlays", REPO / "firstboot"]
HELPER = REPO / "overlays/common/usr/lib/gk/boot-partition"
STATE_CONDITIONS = ("PathExists", "PathExistsGlob", "DirectoryNotEmpty")
FAT32_STATE_OFFSET = 0x41  # the boot sector byte Linux sets to 1 (dirty) while mounted read-write


def unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(path.read_text())
    return cp


def units(suffix: str) -> dict[str, Path]:
    return {p.name: p for d in UNIT_DIRS for p in d.rglob(f"etc/systemd/system/*{suffix}")}


def test_path_units_never_retrigger_a_finished_oneshot() -> None:
    services, paths = units(".service"), units(".path")
    assert "gk-timezone.path" in paths and "gk-ssh.path" in paths
    for name, path in paths.items():
        spec = unit(path)
        target = spec.get("Path", "Unit", fallback=name.removesuffix(".path") + ".service")
        service = unit(services[target])
        oneshot = service.get("Service", "Type", fallback="simple") == "oneshot"
        remains = service.get("Service", "RemainAfterExit", fallback="no") in ("yes", "true", "1")
        conditions = [key for key in STATE_CONDITIONS if spec.has_option("Path", key)]
        assert not (conditions and oneshot and not remains), (
            f"{name}: {conditions} starts {target} (oneshot, no RemainAfterExit) again every time it "
            "finishes until start-limit-hit: watch for changes with PathChanged= instead"
        )
        assert spec.has_option("Path", "PathChanged") or spec.has_option("Path", "PathModified"), name
        # Applied at boot by the service itself (the path unit only sees changes from then on).
        assert service.get("Install", "WantedBy", fallback="") == "multi-user.target", target
        assert service.get("Unit", "StartLimitIntervalSec", fallback="") == "0", (
            f"{target}: every change in the web UI must be applied, however quick the clicks"
        )


def test_the_timezone_switch_is_enabled_on_the_image() -> None:
    preset = (REPO / "overlays/common/etc/systemd/system-preset/00-gk.preset").read_text().split("\n")
    assert "enable gk-timezone.path" in preset and "enable gk-timezone.service" in preset


def test_fstab_mounts_the_boot_partition_read_only() -> None:
    tables = [REPO / "overlays/uefi/etc/fstab", REPO / "overlays/rpi/root/etc/fstab"]
    for table in tables:
        lines = [ln.split() for ln in table.read_text().splitlines() if ln.startswith("LABEL=GK-BOOT")]
        assert len(lines) == 1, table
        assert "ro" in lines[0][3].split(","), f"{table}: the FAT boot partition is mounted {lines[0][3]}"


def test_boot_partition_writers_go_through_the_helper() -> None:
    writers = [
        REPO / "firstboot/tree/usr/lib/gk/firstboot",
        REPO / "firstboot/tree/usr/lib/gk/setup-from-boot",
        REPO / "overlays/uefi/etc/kernel/postinst.d/zz-gk-boot-partition",
        REPO / "overlays/uefi/etc/initramfs/post-update.d/gk-boot-partition",
    ]
    for script in writers:
        text = script.read_text().replace('"$BOOTPART"', "/usr/lib/gk/boot-partition")
        assert "/usr/lib/gk/boot-partition run" in text or 'boot-partition run "$0"' in text, script
    hook = (REPO / "overlays/common/etc/apt/apt.conf.d/60gk-boot-partition").read_text()
    assert "boot-partition rw" in hook and "boot-partition ro" in hook  # raspi-firmware's hooks under dpkg


@pytest.fixture
def fat_mount(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A FAT32 image mounted read-only on a loop device, as the image's fstab mounts GK-BOOT."""
    if os.geteuid() != 0 or not shutil.which("mkfs.vfat"):
        pytest.skip("needs root and mkfs.vfat (dosfstools) to loop-mount a FAT image")
    img, mnt = tmp_path / "boot.img", tmp_path / "boot"
    subprocess.run(["mkfs.vfat", "-F", "32", "-n", "GK-BOOT", "-C", str(img), "65536"], check=True, capture_output=True)
    mnt.mkdir()
    # A writable loop device mounted read-only, like the card: `mount -o loop,ro` would make the
    # device itself read-only, and no remount could write.
    r = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"no loop device here ({r.stderr.strip()}); the QEMU image test checks the same")
    dev = r.stdout.strip()
    r = subprocess.run(["mount", "-t", "vfat", "-o", "ro,umask=0077", dev, str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["losetup", "-d", dev], check=False)
        pytest.skip(f"cannot mount a FAT file system here ({r.stderr.strip()}); the QEMU image test checks the same")
    try:
        yield img, mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        subprocess.run(["losetup", "-d", dev], check=False)


def helper(mnt: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GK_BOOT_MOUNTS": str(mnt), "GK_BOOT_PARTITION_LOCK": str(mnt.parent / "lock")}
    env.pop("GK_BOOT_PARTITION_HELD", None)
    return subprocess.run(["sh", str(HELPER), *args], env=env, capture_output=True, text=True, timeout=60)


def dirty(img: Path) -> bool:
    with open(img, "rb") as f:
        f.seek(FAT32_STATE_OFFSET)
        return bool(f.read(1)[0] & 1)


def read_only(mnt: Path) -> bool:
    out = subprocess.run(["findmnt", "-no", "OPTIONS", "--mountpoint", str(mnt)], capture_output=True, text=True)
    return "ro" in out.stdout.strip().split(",")


def test_boot_partition_is_writable_only_while_a_write_runs(fat_mount: tuple[Path, Path]) -> None:
    img, mnt = fat_mount
    assert read_only(mnt) and not dirty(img)
    assert helper(mnt, "dir").stdout.strip() == str(mnt)
    # The write runs on a writable, dirty-marked partition (the flag this test reads is real)...
    probe = f'echo code > "$GK_BOOT_DIR/GK-SETUP.txt" && od -An -tu1 -j{FAT32_STATE_OFFSET} -N1 {img}'
    r = helper(mnt, "run", "sh", "-c", probe)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1"], f"a read-write FAT mount should be marked dirty: {r.stdout!r}"
    # ...and afterwards it is read-only and clean again: a power cut now finds nothing to repair.
    assert (mnt / "GK-SETUP.txt").read_text() == "code\n"
    assert read_only(mnt) and not dirty(img)
    # A failing writer: its status is returned and the partition is still made read-only again.
    r = helper(mnt, "run", "sh", "-c", "exit 3")
    assert r.returncode == 3 and read_only(mnt) and not dirty(img)


def test_nested_writers_and_the_apt_hooks(fat_mount: tuple[Path, Path]) -> None:
    img, mnt = fat_mount
    # A writer inside a writer (a kernel hook re-executing itself through the helper): no deadlock
    # on the lock, and only the outermost makes the partition read-only again.
    inner = f'sh {HELPER} run sh -c \'echo nested > "$GK_BOOT_DIR/n.txt"\' && touch "$GK_BOOT_DIR/after.txt"'
    r = helper(mnt, "run", "sh", "-c", inner)
    assert r.returncode == 0, r.stderr
    assert (mnt / "n.txt").exists() and (mnt / "after.txt").exists()
    assert read_only(mnt) and not dirty(img)
    # apt: writable for the whole dpkg run; a hook's `run` inside it leaves it writable.
    assert helper(mnt, "rw").returncode == 0 and not read_only(mnt)
    r = helper(mnt, "run", "sh", "-c", 'echo k > "$GK_BOOT_DIR/vmlinuz"')
    assert r.returncode == 0 and not read_only(mnt)
    assert helper(mnt, "ro").returncode == 0 and read_only(mnt) and not dirty(img)
    # Nothing mounted (an image build's chroot): the apt hooks do nothing and succeed.
    nothing = mnt.parent / "not-mounted"
    nothing.mkdir()
    assert helper(nothing, "rw").returncode == 0 and helper(nothing, "ro").returncode == 0
