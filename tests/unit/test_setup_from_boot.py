"""``/usr/lib/gk/setup-from-boot`` (first boot, issue 10 item 2): a GK-SETUP.toml on the boot
partition sets the box up with ``gk setup --answers`` and is then deleted (it holds a password);
bad answers leave it with GK-SETUP-ERRORS.txt naming the fields. The real script runs against
the real ``gk``; only the boot partition's mount helper is a stand-in (a plain directory: the
FAT partition and its read-only remounts are covered by the image test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gk import claim

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "firstboot/tree/usr/lib/gk/setup-from-boot"
ANSWERS = """
[admin]
address = "owner@family.example"
password = "owner passphrase 1"
[host]
timezone = "Europe/Paris"
"""


def run(tmp_path: Path, boot: Path) -> subprocess.CompletedProcess[str]:
    stub = tmp_path / "boot-partition"
    stub.write_text(
        f'#!/bin/sh\nBOOT="{boot}"\ncase "$1" in dir) echo "$BOOT";; run) shift; GK_BOOT_DIR="$BOOT" "$@";; esac\n'
    )
    stub.chmod(0o755)
    gk = tmp_path / "gk"
    gk.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gk "$@"\n')
    gk.chmod(0o755)
    env = {
        **os.environ,
        "GK_BIN": str(gk),
        "GK_DATA": str(tmp_path / "data"),
        "GK_BOOTPART": str(stub),
        "GK_RUNAS": "",
    }
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, check=False)


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    subprocess.run([sys.executable, "-m", "gk", "provision", "--data-dir", str(tmp_path / "data")], check=True)
    d = tmp_path / "boot"
    d.mkdir()
    return d


def test_answers_on_the_boot_partition_set_the_box_up_and_are_deleted(tmp_path: Path, boot: Path) -> None:
    assert run(tmp_path, boot).returncode == 0  # no file: nothing to do
    assert claim.state(tmp_path / "data") == claim.UNCLAIMED
    (boot / "GK-SETUP.toml").write_text(ANSWERS)
    r = run(tmp_path, boot)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "administrator owner@family.example" in r.stdout
    assert not (boot / "GK-SETUP.toml").exists() and not (boot / "GK-SETUP-ERRORS.txt").exists()
    assert claim.is_complete(tmp_path / "data")
    # a second copy on an already set-up box changes nothing and is deleted too
    (boot / "GK-SETUP.toml").write_text(ANSWERS.replace("owner passphrase 1", "another pass 2"))
    assert run(tmp_path, boot).returncode == 0 and not (boot / "GK-SETUP.toml").exists()


def test_bad_answers_stay_with_an_errors_file_and_nothing_is_set_up(tmp_path: Path, boot: Path) -> None:
    (boot / "GK-SETUP.toml").write_text(ANSWERS.replace("Europe/Paris", "Mars/Olympus"))
    r = run(tmp_path, boot)
    assert r.returncode == 2
    assert (boot / "GK-SETUP.toml").exists()
    errors = (boot / "GK-SETUP-ERRORS.txt").read_bytes().decode()  # CRLF: Windows Notepad reads it
    assert "[host] timezone: 'Mars/Olympus' is not a time zone" in errors and "\r\n" in errors
    assert claim.state(tmp_path / "data") == claim.UNCLAIMED
    (boot / "GK-SETUP.toml").write_text(ANSWERS)  # fixed: applied, both files gone
    assert run(tmp_path, boot).returncode == 0
    assert not (boot / "GK-SETUP.toml").exists() and not (boot / "GK-SETUP-ERRORS.txt").exists()
