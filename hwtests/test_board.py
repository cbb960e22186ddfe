"""On-board checks: button wiring and hold times, LED, SD card speed, RAM, CPU temperature and
throttling under load. Each prints its figure; limits are the minimum a GK board needs."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from gk.hw import tune
from gk.hw.leds import Led


def figure(text: str) -> None:
    print(f"\nHWTEST: {text}")


def test_ram_and_cores() -> None:
    ram = tune.read_ram_mb()
    figure(f"RAM {ram} MB, {os.cpu_count()} cores, storage {tune.storage_kind()}")
    assert ram >= 400, "GK needs at least a 512 MB board"


def test_sd_card_sequential_and_random_write(tmp_path_factory: pytest.TempPathFactory) -> None:
    d = Path(os.environ.get("GK_HWTEST_DIR", "/var/lib/gk"))
    path = d / ".hwtest-speed"
    block = os.urandom(1024 * 1024)
    t0 = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(64):
            os.write(fd, block)
        os.fsync(fd)
        seq = 64 / (time.monotonic() - t0)
        small = os.urandom(4096)
        t0 = time.monotonic()
        for i in range(200):
            os.pwrite(fd, small, (i * 7919 % 16384) * 4096)
            os.fsync(fd)
        iops = 200 / (time.monotonic() - t0)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    figure(f"storage: sequential write {seq:.1f} MB/s, random 4k write+fsync {iops:.0f} IOPS")
    assert seq >= 5, "sequential write under 5 MB/s: use an A1/A2 class card"
    assert iops >= 20, "random write+fsync under 20 IOPS: mail delivery will crawl on this card"


def _temp_c() -> float | None:
    zones = sorted(Path("/sys/class/thermal").glob("thermal_zone*/temp"))
    return int(zones[0].read_text()) / 1000 if zones else None


def test_cpu_temperature_and_throttling_under_load() -> None:
    before = _temp_c()
    procs = [subprocess.Popen(["sh", "-c", "end=$(($(date +%s)+60)); while [ $(date +%s) -lt $end ]; do :; done"])
             for _ in range(os.cpu_count() or 1)]  # fmt: skip
    for p in procs:
        p.wait()
    after = _temp_c()
    throttled = ""
    if Path("/usr/bin/vcgencmd").exists():
        throttled = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True).stdout.strip()
    figure(f"CPU temperature {before} -> {after} °C after 60 s full load; {throttled or 'no vcgencmd'}")
    if after is not None:
        assert after < 85, "CPU reaches 85 °C under load: add a heatsink or fan"
    if throttled:
        assert throttled.endswith("0x0"), f"the board throttled or saw under-voltage: {throttled}"


def test_led_blinks() -> None:
    led = Led.find()
    if led.path is None:
        pytest.skip("no LED under /sys/class/leds")
    led.pattern("fast")
    time.sleep(3)
    led.restore()
    figure(f"LED {led.path.name} blinked fast for 3 s (look at the board)")


def _wait_key(seconds: float) -> list[tuple[float, int]]:
    from gk.hw.button import find_devices, key_code

    code = key_code(os.environ.get("GK_BUTTON_KEY", "KEY_RESTART"))
    devices = find_devices(code, os.environ.get("GK_BUTTON_DEVICE", "*"))
    assert devices, "no input device sends the button key: check the wiring (GPIO 21 to GND) and the dtoverlay"
    seen: list[tuple[float, int]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r, _, _ = select.select([d.fd for d in devices], [], [], 0.5)
        for d in devices:
            if d.fd in r:
                seen += [(e.timestamp(), e.value) for e in d.read() if e.type == 1 and e.code == code]
        if seen and seen[-1][1] == 0:
            break
    return seen


@pytest.mark.skipif(not os.isatty(0), reason="interactive: run `make hwtest` on the board's terminal")
def test_button_press_and_ten_second_hold() -> None:
    print("\nPress the GK button briefly now (20 s)…", flush=True)
    ev = _wait_key(20)
    assert ev and ev[0][1] == 1 and ev[-1][1] == 0, f"no press/release seen: {ev}"
    print("Now hold it for 11 seconds, then release (40 s)…", flush=True)
    ev = _wait_key(40)
    held = ev[-1][0] - ev[0][0]
    figure(f"button held {held:.1f} s")
    assert 10 <= held < 30, "the hold time was not measured between 10 and 30 s"
