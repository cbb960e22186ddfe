"""image/: disk assembly without loop mounts on a small root tree (real mkfs.ext4 -d, mkfs.vfat,
mtools, sfdisk), and the build's refusals (no root, missing tool) that name cause and fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.skips import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
TOOLS = ["mkfs.ext4", "mkfs.vfat", "mcopy", "mtype", "sfdisk", "debugfs"]


def fake_root(root: Path) -> None:
    (root / "usr/lib/modules/6.1.0-test").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")
    (root / "boot").mkdir()
    (root / "boot/vmlinuz-6.1.0-test").write_bytes(b"KERNEL" * 1000)
    (root / "boot/initrd.img-6.1.0-test").write_bytes(b"INITRD" * 1000)
    efi = root / "usr/lib/systemd/boot/efi"
    efi.mkdir(parents=True)
    (efi / "systemd-bootx64.efi").write_bytes(b"MZ-systemd-boot")
    (root / "etc").mkdir()
    (root / "etc/hostname").write_text("gk\n")


@pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason="needs " + ", ".join(TOOLS))
def test_assemble_builds_a_gpt_disk_readable_without_mounting(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_root(root)
    out = tmp_path / "disk.img"
    r = subprocess.run([str(REPO / "image/assemble.sh"), str(root), "x86-64", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    assert out.exists() and not Path(str(out) + ".partial").exists()
    table = json.loads(subprocess.run(["sfdisk", "--json", str(out)], capture_output=True, text=True).stdout)
    parts = table["partitiontable"]["partitions"]
    assert table["partitiontable"]["label"] == "gpt" and len(parts) == 2
    assert parts[0]["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" and parts[0]["start"] == 2048
    assert parts[1]["type"] == "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
    # Boot partition: read with mtools at its offset, no mount.
    entry = subprocess.run(["mtype", "-i", f"{out}@@1M", "::loader/entries/gk.conf"], capture_output=True, text=True)
    assert "root=LABEL=gk-root" in entry.stdout and "console=ttyS0" in entry.stdout
    efi = subprocess.run(["mtype", "-i", f"{out}@@1M", "::EFI/BOOT/BOOTX64.EFI"], capture_output=True)
    assert efi.stdout == b"MZ-systemd-boot"
    # Root partition: cut it out and read a file with debugfs.
    part = tmp_path / "root.ext4"
    with open(out, "rb") as src, open(part, "wb") as dst:
        src.seek(parts[1]["start"] * 512)
        dst.write(src.read(parts[1]["size"] * 512))
    cat = subprocess.run(["debugfs", "-R", "cat /etc/hostname", str(part)], capture_output=True, text=True)
    assert cat.stdout == "gk\n"
    label = subprocess.run(["blkid", "-s", "LABEL", "-o", "value", str(part)], capture_output=True, text=True)
    assert label.stdout.strip() == "gk-root"


@pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason="needs " + ", ".join(TOOLS))
def test_assemble_failure_leaves_no_image(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_root(root)
    (root / "usr/lib/systemd/boot/efi/systemd-bootx64.efi").unlink()
    out = tmp_path / "disk.img"
    r = subprocess.run([str(REPO / "image/assemble.sh"), str(root), "x86-64", str(out)], capture_output=True, text=True)
    assert r.returncode != 0 and "systemd-boot-efi" in r.stderr
    assert list(tmp_path.glob("disk.img*")) == [] and list(tmp_path.glob(".assemble.*")) == []


def test_build_refuses_without_root(tmp_path: Path) -> None:
    cmd = ["bash", str(REPO / "image/build.sh")]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            skip_or_fail("setpriv missing (apt-get install util-linux)")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OUT": str(tmp_path / "out")})
    assert r.returncode == 1
    assert "needs root" in r.stderr and "fix: run as root" in r.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the missing-tool check runs after the root check")
def test_build_names_a_missing_tool_and_its_package(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "id", "dirname", "sed", "head", "date", "printf"):
        path = shutil.which(tool)
        assert path
        (bindir / tool).symlink_to(path)
    r = subprocess.run(
        ["bash", str(REPO / "image/build.sh")], capture_output=True, text=True,
        env={"PATH": str(bindir), "OUT": str(tmp_path / "out")},
    )  # fmt: skip
    assert r.returncode == 1
    assert "missing tool mkosi" in r.stderr and "bookworm-backports" in r.stderr


def test_build_rejects_an_unknown_target() -> None:
    r = subprocess.run(["bash", str(REPO / "image/build.sh")], capture_output=True, text=True,
                       env={**os.environ, "BOARD": "rpi9"})  # fmt: skip
    assert r.returncode == 2 and "unknown BOARD=rpi9" in r.stderr
