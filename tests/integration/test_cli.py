"""The CLI contract other issues rely on, through the installed `gk` entry point."""

import subprocess
import sys

from support.gkserver import gk


def test_version():
    out = subprocess.run([sys.executable, "-m", "gk", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("gk ")


def test_user_lifecycle(tmp_path):
    r = gk(tmp_path, "user", "add", "alice@example.org", "--admin", "--password-stdin", input="alpha kettle 71\n")
    assert "added alice@example.org (admin)" in r.stdout
    gk(tmp_path, "user", "add", "bob@example.org", "--password-stdin", input="bravo kettle 72\n")
    r = gk(tmp_path, "user", "add", "bob@example.org", "--password-stdin", input="bravo kettle 72\n", check=False)
    assert r.returncode == 1 and "already exists" in r.stderr
    r = gk(tmp_path, "user", "add", "carol@example.org", "--password-stdin", input="short\n", check=False)
    assert r.returncode == 1 and "at least 8 characters" in r.stderr
    r = gk(tmp_path, "user", "add", "carol@example.org", "--password-stdin", input="password-1\n", check=False)
    assert r.returncode == 1 and "too easy to guess" in r.stderr  # a common password, refused as on the web
    gk(tmp_path, "user", "passwd", "bob@example.org", "--password-stdin", input="charlie kettle 73\n")
    assert gk(tmp_path, "user", "list").stdout.splitlines() == ["alice@example.org\tadmin", "bob@example.org\tuser"]
    r = gk(tmp_path, "user", "add", "mom@family.example", "--password-stdin", input="delta kettle 74\n", check=False)
    assert r.returncode == 1 and "gk domain add family.example" in r.stderr
    gk(tmp_path, "user", "add", "mom@family.example", "--new-domain", "--password-stdin", input="delta kettle 74\n")
    r = gk(tmp_path, "domain", "add", "gmail.com", check=False)
    assert r.returncode == 1 and "public mail provider" in r.stderr
    assert gk(tmp_path, "domain", "list").stdout.splitlines() == ["example.org\t2", "family.example\t1"]
    gk(tmp_path, "user", "del", "mom@family.example")
    gk(tmp_path, "domain", "del", "family.example")
    gk(tmp_path, "alias", "add", "postmaster@example.org", "alice@example.org")
    assert "postmaster@example.org\talice@example.org" in gk(tmp_path, "alias", "list").stdout
    gk(tmp_path, "user", "del", "bob@example.org")
    assert gk(tmp_path, "user", "list").stdout.splitlines() == ["alice@example.org\tadmin"]
    r = gk(tmp_path, "user", "del", "bob@example.org", check=False)
    assert r.returncode == 1 and "no such user" in r.stderr


def test_config_show_and_check(tmp_path):
    shown = gk(tmp_path, "config", "show").stdout
    assert "[smtp]" in shown and "submission_port = 2587" in shown
    (tmp_path / "gk.toml").write_text("[smtp]\nmax_recipients = 0\nbogus = 1\n")
    r = gk(tmp_path, "config", "check", check=False)
    assert r.returncode == 2
    assert "smtp.max_recipients: must be >= 1" in r.stderr
    assert "smtp.bogus: unknown key" in r.stderr


def test_serve_makes_its_tls_pair_keeps_a_given_config_and_stops_on_sigterm(make_server):
    """A first start makes the self-signed pair naming the configured host, leaves a gk.toml it
    was given as written (commented defaults are only for a missing one: the next test), and
    SIGTERM stops it cleanly."""
    from gk.security.tls import certificate_names

    srv = make_server()
    srv.session_keys = False  # this test is about the server making its own pair
    srv.write_config()
    given = (srv.data_dir / "gk.toml").read_text()
    assert not (srv.data_dir / "tls").exists()
    srv.start()
    assert srv.stop() == 0
    log = srv.log()
    assert "ready in" in log and "stopped" in log
    assert "mx.test.example" in certificate_names(srv.data_dir / "tls" / "cert.pem")
    assert (srv.data_dir / "tls" / "key.pem").stat().st_mode & 0o077 == 0
    assert (srv.data_dir / "gk.toml").read_text() == given


def test_serve_refuses_bad_config_naming_the_key(tmp_path):
    (tmp_path / "gk.toml").write_text("[imap]\nport = -5\n")
    r = subprocess.run(
        [sys.executable, "-m", "gk", "serve", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2
    assert "imap.port: must be a port number" in r.stderr


def test_serve_creates_commented_defaults(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "gk", "serve", "--data-dir", str(tmp_path / "d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(600):
            if (tmp_path / "d" / "gk.toml").exists():
                break
            import time

            time.sleep(0.05)
        text = (tmp_path / "d" / "gk.toml").read_text()
        assert "# submission_port = 2587" in text
    finally:
        proc.terminate()
        proc.wait(30)
