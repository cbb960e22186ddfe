"""The session's key material (tests/support/material.py) is what GK itself would use: a seeded
data dir makes GK keep the copied TLS pair and DKIM key instead of making new ones."""

from __future__ import annotations

from pathlib import Path

from support import material

from gk.config import load
from gk.mail.dkim import ensure_keys
from gk.security.tls import ensure_tls


def test_a_seeded_data_dir_keeps_the_session_pair_and_dkim_key(tmp_path: Path) -> None:
    material.seed(tmp_path, "mx.test.example", {"Example.ORG"})
    cert, key = material.tls_pair("mx.test.example")
    cfg = load(tmp_path)
    files = ensure_tls(tmp_path, cfg.tls, "mx.test.example")
    assert files.cert.read_bytes() == cert.read_bytes() and files.key.read_bytes() == key.read_bytes()
    assert files.key.stat().st_mode & 0o077 == 0
    (rsa,) = ensure_keys(tmp_path, "example.org", "gk")
    assert rsa.private_pem() == (material.dkim_dir("example.org", "gk") / "rsa-gk.pem").read_bytes()


def test_seed_keeps_what_a_data_dir_has(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "cert.pem").write_text("mine")
    material.seed(tmp_path, "mx.test.example", set())
    assert (tmp_path / "tls" / "cert.pem").read_text() == "mine" and not (tmp_path / "tls" / "key.pem").exists()


def test_another_host_name_gets_its_own_pair() -> None:
    assert material.tls_pair("a.test.example")[0].read_bytes() != material.tls_pair("b.test.example")[0].read_bytes()
