"""gk provision: the first-boot state of a data dir, idempotent; the setup code comes from the
claim database, so a corrupt or missing code file never lets anyone claim; seeds only unclaimed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gk import claim
from gk.hw import provision


def gk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gk", *args], capture_output=True, text=True, check=False)


def test_provision_makes_config_secrets_tls_and_a_setup_code_once(tmp_path: Path) -> None:
    r = gk("provision", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    for name in ("gk.toml", "secrets/session", "tls/cert.pem", "tls/key.pem", "claim.sqlite3"):
        assert (tmp_path / name).exists(), name
    assert (tmp_path / "tls/key.pem").stat().st_mode & 0o077 == 0
    cert, secret = (tmp_path / "tls/cert.pem").read_bytes(), (tmp_path / "secrets/session").read_bytes()
    code = gk("provision", "--data-dir", str(tmp_path), "--print-setup-code").stdout.strip()
    assert claim.check_code(tmp_path, code)
    assert gk("provision", "--data-dir", str(tmp_path)).returncode == 0  # a resumed first boot
    assert (tmp_path / "tls/cert.pem").read_bytes() == cert and (tmp_path / "secrets/session").read_bytes() == secret
    assert gk("provision", "--data-dir", str(tmp_path), "--print-setup-code").stdout.strip() == code


def test_corrupt_or_missing_code_file_claims_nothing(tmp_path: Path) -> None:
    provision.provision(tmp_path)
    real = gk("provision", "--data-dir", str(tmp_path), "--print-setup-code").stdout.strip()
    (tmp_path / claim.SETUP_CODE_FILE).write_text("AAAA-BBBB-CCCC\n\x00garbage")
    assert not claim.check_code(tmp_path, "AAAA-BBBB-CCCC")
    assert not claim.check_code(tmp_path, "")
    (tmp_path / claim.SETUP_CODE_FILE).unlink()
    assert gk("provision", "--data-dir", str(tmp_path), "--print-setup-code").stdout.strip() == real
    assert claim.state(tmp_path) == claim.UNCLAIMED


def test_seed_users_only_while_unclaimed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.txt"
    seed.write_text("# users\nann@example.test Ann-Passw0rd-long admin\nbo@example.test Bo-Passw0rd-long-2\n")
    data = tmp_path / "data"
    r = gk("provision", "--data-dir", str(data), "--seed", str(seed))
    assert r.returncode == 0, r.stderr
    listed = gk("user", "list", "--data-dir", str(data)).stdout
    assert "ann@example.test\tadmin" in listed and "bo@example.test\tuser" in listed
    claim.claim(data, "setup code")
    r = gk("provision", "--data-dir", str(data), "--seed", str(seed))
    assert r.returncode == 1 and "already claimed" in r.stderr


def test_bad_seed_line_is_refused(tmp_path: Path) -> None:
    seed = tmp_path / "seed.txt"
    seed.write_text("ann@example.test pw superuser\n")
    with pytest.raises(ValueError, match="expected 'address password"):
        provision.apply_seed(tmp_path, seed)
