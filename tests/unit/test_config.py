import re
from pathlib import Path

import pytest

from gk import config


def test_dev_defaults_use_dev_ports(tmp_path: Path):
    cfg = config.load(tmp_path)
    assert (cfg.smtp.port, cfg.smtp.submission_port, cfg.smtp.submissions_port) == (2525, 2587, 2465)
    assert (cfg.imap.port, cfg.imap.tls_port, cfg.http.port, cfg.http.https_port) == (2143, 2993, 8080, 8443)


def test_unknown_key_and_bad_value_are_named(tmp_path: Path):
    (tmp_path / "gk.toml").write_text(
        '[smtp]\nportt = 1\nmax_recipients = "many"\n[nope]\nx = 1\n[imap]\nport = 70000\n'
    )
    with pytest.raises(config.ConfigError) as err:
        config.load(tmp_path)
    text = str(err.value)
    assert "smtp.portt: unknown key" in text
    assert "smtp.max_recipients: expected an integer" in text
    assert "[nope]: unknown section" in text
    assert "imap.port: must be a port number" in text


def test_commented_defaults_round_trip(tmp_path: Path):
    path = config.ensure_config_file(tmp_path)
    text = path.read_text()
    assert "# max_message_size = 52428800" in text
    key_line = re.compile(r"^# [a-z_0-9]+ = ")
    uncommented = "\n".join(line[2:] if key_line.match(line) else line for line in text.splitlines())
    (tmp_path / "gk.toml").write_text(uncommented)
    assert config.load(tmp_path) == config.load(tmp_path / "other")


def test_bad_toml_syntax_names_file(tmp_path: Path):
    (tmp_path / "gk.toml").write_text("[smtp\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(tmp_path)
    assert "gk.toml" in str(err.value) and "not valid TOML" in str(err.value)


def test_gil_switch_interval_and_inference_nice_are_checked(tmp_path: Path):
    cfg = config.load(tmp_path)
    assert cfg.server.switch_interval_ms > 0 and 0 <= cfg.ai.nice <= 19
    (tmp_path / "gk.toml").write_text("[server]\nswitch_interval_ms = 0.01\n[ai]\nnice = 20\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(tmp_path)
    assert "server.switch_interval_ms: must be >= 0.1" in str(err.value)
    assert "ai.nice: must be between 0 and 19" in str(err.value)
    (tmp_path / "gk.toml").write_text("[server]\nswitch_interval_ms = 1\n[ai]\nnice = 5\n")
    cfg = config.load(tmp_path)
    assert (cfg.server.switch_interval_ms, cfg.ai.nice) == (1.0, 5)


def test_serve_sets_the_gil_switch_interval():
    import sys

    from gk import server

    before = sys.getswitchinterval()
    try:
        server.set_switch_interval(0.5)
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    finally:
        sys.setswitchinterval(before)
