"""``gk button``: the reset button, read from a Linux input device.

The device is found with pyudev (every ``/dev/input/event*`` whose name matches the configured
glob and whose key capabilities include the configured key — a gpio-keys device on a board,
any keyboard in a VM so QEMU's ``sendkey f12 11000`` can hold it); events come from evdev.
Hold time decides, on release: < 10 s = a short press (confirms a wizard claim), >= 10 s =
owner recovery (claim and admin-password steps reopen for 15 minutes, data kept), >= 30 s =
factory reset (data dir wiped, reboot into first boot). While held, the LED blinks slowly past
10 s and fast past 30 s, and each stage is logged (journal).

Claim state is written by a forked child running as the data dir's owner, so the SQLite files
stay the gk user's. A factory reset first leaves a marker in the first-boot state dir: if the
power fails mid-wipe, first boot finishes the wipe.

Cost: one sleeping process (~15 MB RSS with the Python runtime), woken only by key events of
the watched devices and a 0.5 s tick while the button is held. evdev is loaded without its
asyncio front end (``_evdev``) and the claim code only in the child that acts on a press.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gk.hw.leds import Led

log = logging.getLogger("gk.button")

RECOVERY_SECONDS = 10.0
RESET_SECONDS = 30.0
FIRSTBOOT_STATE = Path("/var/lib/gk-firstboot")
RESET_MARKER = "factory-reset.pending"

PRESS, RECOVERY, FACTORY_RESET = "press", "recovery", "factory-reset"


@dataclass
class HoldTracker:
    """Turns key down/up events into an action by hold time; autorepeat (value 2) is ignored."""

    recovery_s: float = RECOVERY_SECONDS
    reset_s: float = RESET_SECONDS
    down_at: float | None = None
    announced: set[str] = field(default_factory=set)

    def key(self, value: int, t: float) -> str | None:
        if value == 1 and self.down_at is None:
            self.down_at = t
            self.announced.clear()
            return None
        if value == 0 and self.down_at is not None:
            held = t - self.down_at
            self.down_at = None
            if held >= self.reset_s:
                return FACTORY_RESET
            if held >= self.recovery_s:
                return RECOVERY
            return PRESS
        return None

    def stage(self, t: float) -> str | None:
        """While held: the action a release now would take, once per stage change (for feedback)."""
        if self.down_at is None:
            return None
        held = t - self.down_at
        now = FACTORY_RESET if held >= self.reset_s else RECOVERY if held >= self.recovery_s else PRESS
        if now in self.announced:
            return None
        self.announced.add(now)
        return now


def _evdev() -> Any:
    """The evdev package, loaded without asyncio when this process has not loaded evdev yet.

    evdev's ``InputDevice`` imports ``evdev.eventio_async`` (asyncio, and with it ssl and
    concurrent.futures: ~9 MB RSS) and falls back to the blocking ``evdev.eventio`` when that
    import fails; the button only uses blocking reads under ``select``, so it blocks the import.
    """
    if "evdev" not in sys.modules:
        sys.modules.setdefault("evdev.eventio_async", None)  # type: ignore[arg-type]
    import evdev

    return evdev


def key_code(name: str) -> int:
    ecodes = _evdev().ecodes

    code = ecodes.ecodes.get(name.upper())
    if not isinstance(code, int) or not name.upper().startswith(("KEY_", "BTN_")):
        raise ValueError(f"unknown key {name!r}: use an evdev key name such as KEY_RESTART or KEY_F12")
    return code


def find_devices(code: int, name_glob: str = "*") -> list[Any]:
    """Input devices (evdev.InputDevice) that can send ``code`` and whose name matches the glob."""
    import pyudev

    evdev = _evdev()

    found = []
    ctx = pyudev.Context()
    for dev in ctx.list_devices(subsystem="input"):
        node = dev.device_node
        if not node or not os.path.basename(node).startswith("event"):
            continue
        try:
            ind = evdev.InputDevice(node)
        except OSError:
            continue
        keys = ind.capabilities().get(evdev.ecodes.EV_KEY, [])
        if code in keys and fnmatch.fnmatch(ind.name.lower(), name_glob.lower()):
            found.append(ind)
        else:
            ind.close()
    # gpio-keys first: a board's real button wins over a keyboard that happens to have the key
    found.sort(key=lambda d: "gpio" not in d.name.lower())
    return found


def as_owner(data_dir: Path, fn: Callable[[], Any]) -> int:
    """Run ``fn`` in a child process with the uid/gid of ``data_dir``'s owner; its exit code."""
    st = data_dir.stat()
    if os.geteuid() != 0 or st.st_uid == 0:
        try:
            fn()
            return 0
        except Exception:
            log.exception("button action failed")
            return 1
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.setgroups([])
            os.setgid(st.st_gid)
            os.setuid(st.st_uid)
            fn()
            code = 0
        except BaseException:
            log.exception("button action failed")
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def wipe_data_dir(data_dir: Path) -> int:
    """Remove everything inside ``data_dir`` (the directory itself stays). Returns entries removed."""
    n = 0
    for child in list(data_dir.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
        n += 1
    os.sync()
    return n


def factory_reset(data_dir: Path, state_dir: Path | None = None, reboot: bool = True) -> None:
    state_dir = state_dir or FIRSTBOOT_STATE
    state_dir.mkdir(parents=True, exist_ok=True)
    marker = state_dir / RESET_MARKER
    marker.write_text(f"{time.time()}\n")
    fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if reboot:
        subprocess.run(["systemctl", "stop", "gk.service"], check=False)
    log.warning("factory reset: wiping %s", data_dir)
    wipe_data_dir(data_dir)
    for stamp in state_dir.glob("*.done"):
        stamp.unlink()
    marker.unlink()
    os.sync()
    if reboot:
        log.warning("factory reset: rebooting into first boot")
        subprocess.run(["systemctl", "reboot"], check=False)


def _claim() -> Any:
    """gk.claim (SQLite, the setup-code store), imported where a press is acted on: in the child
    that as_owner forks, so the resident service never carries it."""
    from gk import claim

    return claim


class ButtonService:
    def __init__(
        self,
        data_dir: Path,
        key: str,
        device_glob: str = "*",
        publish_cmd: str = "",
        led: Led | None = None,
        reboot: bool = True,
    ):
        self.data_dir = data_dir
        self.code = key_code(key)
        self.key = key
        self.device_glob = device_glob
        self.publish_cmd = publish_cmd
        self.led = led or Led.find()
        self.reboot = reboot
        self.tracker = HoldTracker()

    def act(self, action: str) -> None:
        if action == PRESS:
            log.info("button: short press (confirms an open claim step)")
            as_owner(self.data_dir, lambda: _claim().button_pressed(self.data_dir))
        elif action == RECOVERY:
            log.warning("button: held >= %.0f s: owner recovery open for 15 minutes", RECOVERY_SECONDS)
            as_owner(self.data_dir, lambda: _claim().open_recovery(self.data_dir, minutes=15))
            if self.publish_cmd:
                subprocess.run(self.publish_cmd, shell=True, check=False)
        elif action == FACTORY_RESET:
            log.warning("button: held >= %.0f s: FACTORY RESET", RESET_SECONDS)
            self.led.pattern("on")
            factory_reset(self.data_dir, reboot=self.reboot)

    def feedback(self, stage: str) -> None:
        if stage == RECOVERY:
            log.info("button: release now for owner recovery (keep holding for factory reset)")
            self.led.pattern("slow")
        elif stage == FACTORY_RESET:
            log.info("button: release now for FACTORY RESET")
            self.led.pattern("fast")

    def handle(self, events: Iterable[Any], now: float) -> None:
        ecodes = _evdev().ecodes

        for ev in events:
            if ev.type != ecodes.EV_KEY or ev.code != self.code:
                continue
            action = self.tracker.key(ev.value, ev.timestamp() if ev.sec else now)
            if ev.value == 1:
                log.info("button: %s down", self.key)
            if action:
                self.led.restore()
                self.act(action)

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        monitor.filter_by("input")
        monitor.start()
        devices = find_devices(self.code, self.device_glob)
        if devices:
            log.info("button: watching %s on %s", self.key, ", ".join(f"{d.path} ({d.name})" for d in devices))
        else:
            log.warning("button: no input device with %s yet (glob %r); waiting for one", self.key, self.device_glob)
        while not stop():
            fds: dict[int, Any] = {d.fd: d for d in devices}
            ready, _, _ = select.select([*fds, monitor.fileno()], [], [], 0.5)
            now = time.time()
            for fd in ready:
                if fd == monitor.fileno():
                    while monitor.poll(timeout=0) is not None:
                        pass
                    for d in devices:
                        d.close()
                    devices = find_devices(self.code, self.device_glob)
                    log.info("button: input devices changed; watching %d", len(devices))
                    break
                try:
                    self.handle(fds[fd].read(), now)
                except BlockingIOError:
                    pass
                except OSError:
                    log.warning("button: %s went away", fds[fd].path)
                    devices = [d for d in devices if d.fd != fd]
            stage = self.tracker.stage(now)
            if stage:
                self.feedback(stage)
