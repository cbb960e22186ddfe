"""gk button: hold-time decisions, device-independent event handling with real evdev events,
owner recovery and factory reset against a real claim database and data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.skips import skip_or_fail

from gk import claim
from gk.hw import button
from gk.hw.leds import Led

try:
    import evdev
except ImportError:
    skip_or_fail("python evdev not installed (pip install -e 'appliance[test]')")


def test_hold_tracker_thresholds() -> None:
    t = button.HoldTracker()
    assert t.key(1, 100.0) is None
    assert t.key(2, 101.0) is None  # autorepeat is not a new press
    assert t.key(0, 100.5 + 1) == button.PRESS
    t.key(1, 0.0)
    assert t.key(0, 10.0) == button.RECOVERY
    t.key(1, 0.0)
    assert t.key(0, 29.9) == button.RECOVERY
    t.key(1, 0.0)
    assert t.key(0, 30.0) == button.FACTORY_RESET
    assert t.key(0, 31.0) is None  # a release without a press does nothing


def test_hold_tracker_feedback_stages_once_each() -> None:
    t = button.HoldTracker()
    t.key(1, 0.0)
    stages = [t.stage(x / 2) for x in range(0, 70)]
    assert [s for s in stages if s] == [button.PRESS, button.RECOVERY, button.FACTORY_RESET]


def events(code: int, *pairs: tuple[float, int]) -> list[object]:
    out = []
    for ts, value in pairs:
        sec, usec = int(ts), int((ts - int(ts)) * 1e6)
        out.append(evdev.InputEvent(sec, usec, evdev.ecodes.EV_KEY, code, value))
        out.append(evdev.InputEvent(sec, usec, evdev.ecodes.EV_SYN, 0, 0))
    return out


def service(tmp_path: Path, leds: Path | None = None) -> button.ButtonService:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return button.ButtonService(data, "KEY_F12", led=Led.find(leds or tmp_path / "no-leds"), reboot=False)


def test_short_press_records_a_claim_press(tmp_path: Path) -> None:
    svc = service(tmp_path)
    f12 = evdev.ecodes.KEY_F12
    svc.handle(events(evdev.ecodes.KEY_A, (1000.0, 1), (1020.0, 0)), 0)  # another key: ignored
    assert not claim.take_button_press(svc.data_dir, 0)
    svc.handle(events(f12, (1000.0, 1), (1000.3, 0)), 0)
    import time as _t

    assert claim.take_button_press(svc.data_dir, _t.time() - 60)


def test_ten_second_hold_opens_owner_recovery(tmp_path: Path) -> None:
    svc = service(tmp_path)
    claim.ensure_setup_code(svc.data_dir)
    claim.claim(svc.data_dir, "setup code")
    claim.complete(svc.data_dir)
    assert not claim.recovery_open(svc.data_dir) and claim.ensure_setup_code(svc.data_dir) is None
    svc.handle(events(evdev.ecodes.KEY_F12, (50.0, 1), (55.0, 2), (61.0, 0)), 0)
    assert claim.recovery_open(svc.data_dir)
    assert claim.ensure_setup_code(svc.data_dir), "recovery must offer a new setup code"


def test_thirty_second_hold_wipes_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "firstboot"
    state.mkdir()
    (state / "provision.done").write_text("")
    monkeypatch.setattr(button, "FIRSTBOOT_STATE", state)
    svc = service(tmp_path)
    (svc.data_dir / "mail" / "a@b" / "Maildir").mkdir(parents=True)
    (svc.data_dir / "accounts.sqlite3").write_bytes(b"x")
    svc.handle(events(evdev.ecodes.KEY_F12, (0.0, 1), (31.0, 0)), 0)
    assert svc.data_dir.is_dir() and list(svc.data_dir.iterdir()) == []
    assert list(state.iterdir()) == [], "first-boot stamps must go so the next boot provisions anew"


def test_led_patterns_use_the_sysfs_timer_trigger(tmp_path: Path) -> None:
    led_dir = tmp_path / "leds" / "ACT"
    led_dir.mkdir(parents=True)
    for name, text in {"brightness": "0", "trigger": "none [mmc0] timer", "delay_on": "", "delay_off": ""}.items():
        (led_dir / name).write_text(text)
    led = Led.find(tmp_path / "leds")
    assert led.path == led_dir
    led.pattern("fast")
    assert (led_dir / "trigger").read_text() == "timer" and (led_dir / "delay_on").read_text() == "100"
    led.restore()
    assert (led_dir / "trigger").read_text() == "mmc0"


def test_unknown_key_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        button.key_code("KEY_NOPE")
    assert button.key_code("KEY_RESTART") == 0x198


def test_button_command_runs_without_gk_cli_and_refuses_a_bad_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, gk.hw.button_command as b; rc = b.main(sys.argv[1:]); "
        "print(sorted({'gevent', 'asyncio', 'gk.claim', 'evdev'} & set(sys.modules))); sys.exit(rc)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "--data-dir", str(tmp_path), "--key", "KEY_NOPE"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 2 and "unknown key" in r.stderr
    # evdev was loaded to look the key up, but without its asyncio front end (~9 MB) or gevent
    assert r.stdout.strip() == "['evdev']", "the button service must not pull in gevent, asyncio or gk.claim"


def test_evdev_without_asyncio_still_reads_events(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import os, sys, struct; from gk.hw import button; ev = button._evdev(); "
        "r, w = os.pipe(); os.write(w, struct.pack('llHHi', 5, 0, ev.ecodes.EV_KEY, ev.ecodes.KEY_F12, 1)); "
        "d = ev.InputDevice.__new__(ev.InputDevice); d.fd = r; "
        "print([(e.code, e.value) for e in [d.read_one()]], type(d).__mro__[1].__module__, 'asyncio' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"[({evdev.ecodes.KEY_F12},", "1)]", "evdev.eventio", "False"], r.stdout
