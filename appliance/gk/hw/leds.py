"""Feedback LED through ``/sys/class/leds`` (the activity LED on a Pi, any LED elsewhere).

``Led.pattern("slow"|"fast"|"on"|"off")`` sets the kernel's timer trigger, so blinking costs
no CPU here; ``restore()`` puts back the trigger the LED had. No LED: every call is a no-op
and the button service logs to the journal only.
"""

from __future__ import annotations

import re
from pathlib import Path

PREFERRED = ("act", "led0", "status", "activity", "power", "pwr", "led1")
PATTERNS = {"slow": (500, 500), "fast": (100, 100)}


class Led:
    def __init__(self, path: Path | None):
        self.path = path
        self._saved_trigger: str | None = None

    @classmethod
    def find(cls, root: Path = Path("/sys/class/leds"), name: str = "") -> Led:
        if not root.is_dir():
            return cls(None)
        leds = sorted(p for p in root.iterdir() if (p / "brightness").exists())
        if name:
            leds = [p for p in leds if p.name == name]
        for pref in PREFERRED:
            for p in leds:
                if pref in p.name.lower():
                    return cls(p)
        return cls(leds[0] if leds else None)

    def _write(self, attr: str, value: str) -> None:
        if self.path is None:
            return
        try:
            (self.path / attr).write_text(value)
        except OSError:
            pass

    def _current_trigger(self) -> str:
        if self.path is None:
            return "none"
        try:
            m = re.search(r"\[([^\]]+)\]", (self.path / "trigger").read_text())
        except OSError:
            return "none"
        return m.group(1) if m else "none"

    def pattern(self, name: str) -> None:
        if self.path is None:
            return
        if self._saved_trigger is None:
            self._saved_trigger = self._current_trigger()
        if name in PATTERNS:
            on, off = PATTERNS[name]
            self._write("trigger", "timer")
            self._write("delay_on", str(on))
            self._write("delay_off", str(off))
        else:
            self._write("trigger", "none")
            self._write("brightness", "1" if name == "on" else "0")

    def restore(self) -> None:
        if self._saved_trigger is not None:
            self._write("trigger", self._saved_trigger)
            self._saved_trigger = None
