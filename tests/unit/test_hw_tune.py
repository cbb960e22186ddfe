"""gk tune: profile tiers by RAM/cores/storage, gk.toml editing that respects the owner, and the
real `gk tune --apply` command writing a profile `gk serve`'s config loader accepts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gk import config as gkconfig
from gk.hw import tune


def hw(ram_mb: int, cores: int = 4, storage: str = "ssd", free_mb: int = 50_000) -> tune.Hardware:
    return tune.Hardware(ram_mb=ram_mb, cores=cores, storage=storage, storage_free_mb=free_mb)


@pytest.mark.parametrize(
    ("ram", "tier", "model"),
    [(460, "512M", ""), (950, "1G", "qwen2.5-0.5b"), (1900, "2G", "qwen2.5-1.5b"), (3800, "4G", "qwen2.5-3b"),
     (7800, "8G", "qwen2.5-7b"), (64000, "8G", "qwen2.5-7b")],
)  # fmt: skip
def test_tier_by_ram(ram: int, tier: str, model: str) -> None:
    p = tune.profile_for(hw(ram))
    assert p.tier == tier
    assert p.llm_model.startswith(model) if model else p.llm_model == ""
    assert p.memory_high_mb < p.memory_max_mb < ram + 200
    assert p.zram_mb <= ram // 2


def test_profiles_grow_with_ram() -> None:
    profiles = [tune.profile_for(hw(r)) for r in (460, 950, 1900, 3800, 7800)]
    for small, big in zip(profiles, profiles[1:], strict=False):
        assert big.sqlite_cache_kib >= small.sqlite_cache_kib
        assert big.argon2_memory_kib >= small.argon2_memory_kib
        assert big.memory_high_mb > small.memory_high_mb


def test_sd_card_halves_connections_and_threads_leave_a_core() -> None:
    ssd, sd = tune.profile_for(hw(3800, storage="ssd")), tune.profile_for(hw(3800, storage="sd"))
    assert sd.smtp_max_connections < ssd.smtp_max_connections
    assert tune.profile_for(hw(3800, cores=4)).llm_threads == 3
    assert tune.profile_for(hw(3800, cores=2)).llm_threads == 2


def test_small_disk_takes_a_smaller_model_or_none() -> None:
    assert tune.profile_for(hw(7800, free_mb=2500)).llm_model.startswith("qwen2.5-1.5b")
    assert tune.profile_for(hw(7800, free_mb=800)).llm_model == ""


def test_config_text_replaces_defaults_and_keeps_owner_values(tmp_path: Path) -> None:
    text = gkconfig.commented_defaults(tmp_path)
    text = text.replace("# max_connections = 500", "max_connections = 42")  # the owner's own imap value
    out = tune.tune_config_text(text, {"smtp.max_connections": 20, "imap.max_connections": 50})
    assert "max_connections = 20  # gk tune" in out
    assert "max_connections = 42" in out and "max_connections = 50" not in out
    again = tune.tune_config_text(out, {"smtp.max_connections": 30, "imap.max_connections": 50})
    assert "max_connections = 30  # gk tune" in again and again.count("# gk tune") == 1
    (tmp_path / "gk.toml").write_text(again)
    cfg = gkconfig.load(tmp_path)
    assert (cfg.smtp.max_connections, cfg.imap.max_connections) == (30, 42)


def test_gk_tune_apply_command(tmp_path: Path) -> None:
    data, etc = tmp_path / "data", tmp_path / "etc"
    (etc / "systemd").mkdir(parents=True)
    r = subprocess.run(
        [sys.executable, "-m", "gk", "tune", "--apply", "--ram-mb", "480", "--data-dir", str(data), "--etc", str(etc)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads((data / "tune.json").read_text())
    assert doc["profile"]["tier"] == "512M" and doc["hardware"]["ram_mb"] == 480
    assert "zram-size = 240" in (etc / "systemd" / "zram-generator.conf").read_text()
    cfg = gkconfig.load(data)
    assert cfg.auth.argon2_memory_kib == 19456
    assert cfg.smtp.max_connections == doc["profile"]["smtp_max_connections"]


def test_measure_reads_this_machine(tmp_path: Path) -> None:
    m = tune.measure(tmp_path)
    assert m.ram_mb > 100 and m.cores >= 1 and m.storage_free_mb > 0
    assert m.storage in ("sd", "usb", "nvme", "ssd", "hdd", "unknown")


def test_docs_table_matches_code() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "tuning.md").read_text()
    assert tune.markdown_table() in doc, "docs/tuning.md is stale: regenerate it with `gk tune --table`"


def test_tuned_keys_missing_from_an_existing_table_go_into_it_not_a_second_one():
    """A gk.toml written before a tuned key existed: the key joins its table (declaring [server]
    twice would be invalid TOML and stop gk serve at boot)."""
    import tomllib

    from gk.hw.tune import Hardware, profile_for, tune_config_text

    old = '[server]\nhostname = "box"\n\n[auth]\n# argon2_time_cost = 3\nlogin_cache_seconds = 60\n'
    text = tune_config_text(old, profile_for(Hardware(1024, 4, "sd", 10_000)).config_keys())
    doc = tomllib.loads(text)
    assert doc["server"] == {"hostname": "box", "sqlite_cache_kib": doc["server"]["sqlite_cache_kib"]}
    assert doc["auth"]["login_cache_seconds"] == 60 and "argon2_memory_kib" in doc["auth"]
    assert text.count("[server]") == 1 and text.count("[auth]") == 1
    again = tune_config_text(text, profile_for(Hardware(8192, 8, "nvme", 100_000)).config_keys())
    assert tomllib.loads(again)["server"]["sqlite_cache_kib"] > doc["server"]["sqlite_cache_kib"]
