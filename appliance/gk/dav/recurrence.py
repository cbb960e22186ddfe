"""Bounds on expanding recurring events (dateutil, under vobject, Radicale and the web calendar).

dateutil walks a recurrence set one occurrence at a time from its ``DTSTART``, and nothing
stopped the walk: an event with ``RRULE:FREQ=SECONDLY`` (no ``COUNT`` or ``UNTIL``; Radicale
checks only bounded rules when storing) made

* a CalDAV ``calendar-query`` with ``<C:expand>`` over a wide range build a list of every second
  (Radicale passes its ``max_expand_occurrence`` as ``between(..., count=...)``, which dateutil
  ignores): hundreds of MB a second until the kernel killed the box;
* a ``time-range`` far from ``DTSTART``, or the web calendar's month a year later (on the hub),
  walk tens of millions of occurrences: minutes of CPU, the whole box frozen on the web page.

``install()`` (idempotent; by the DAV application and the web calendar) makes ``between`` stop
at ``count`` when a caller passes one, and makes every walk of a recurrence raise
``TooManyOccurrences`` (a ``ValueError``: Radicale answers 400, the web calendar shows the
event once) after ``MAX_STEPS`` occurrences, about a second of CPU on a loaded 2-core box. A
daily event walks 46,000 steps from 1900 to 2026 (within it), an hourly one 50,000 in under six
years (past it: such an event is shown once, and a CalDAV query reaching that far gets 400).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MAX_STEPS = 50_000


class TooManyOccurrences(ValueError):
    pass


def install() -> None:
    from dateutil import rrule  # type: ignore[import-untyped]

    base = rrule.rrulebase
    if getattr(base, "gk_bounded", False):
        return
    walk = base.__iter__
    between = base.between

    def bounded_iter(self: Any) -> Iterator[Any]:
        for n, when in enumerate(walk(self)):
            if n >= MAX_STEPS:
                raise TooManyOccurrences(f"a recurrence walked past {MAX_STEPS} occurrences")
            yield when

    def bounded_between(self: Any, after: Any, before: Any, inc: bool = False, count: int | None = None) -> list[Any]:
        if not count or count < 1:
            return between(self, after, before, inc)
        out: list[Any] = []
        for when in self:
            if when > before or (not inc and when == before):
                break
            if when > after or (inc and when == after):
                out.append(when)
                if len(out) >= count:
                    break
        return out

    base.__iter__ = bounded_iter  # type: ignore[method-assign]
    base.between = bounded_between  # type: ignore[method-assign]
    base.gk_bounded = True  # type: ignore[attr-defined]
