"""The CPU of one accepted CalDAV PUT between the body and the row: ``gk.dav.validate``'s check,
then Radicale's ``read_components`` and ``put.prepare`` (its check, the item's text, etag and
time range), in one process, for a small event (~220 bytes) and a large one (~214 KB: a daily
series and 455 moved occurrences with descriptions, as a long-lived meeting becomes).

- "parsed twice": the validator parses and checks, then Radicale parses and checks again (the code
  before ``validate.handing``);
- "handed over": Radicale's PUT takes the validator's parse and skips the check already made on it
  (``validate.install``/``handing``, what ``gk.dav.extensions`` does).

Prints the median of ``ROUNDS`` runs of each, and the ratio. Both paths store the same text and
etag (checked here too, and in ``tests/unit/test_dav_validate.py``). Run:
``flock /work/bench.lock .venv/bin/python -m bench dav_put_parse``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

ROUNDS = 31
SMALL_ROUNDS = 2001
HEAD = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GK//bench//EN\r\n"


def small() -> str:
    return (
        HEAD + "BEGIN:VEVENT\r\nUID:small-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260310T090000Z\r\n"
        "DTEND:20260310T100000Z\r\nSUMMARY:meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def large(overrides: int = 455) -> str:
    words = "the weekly planning of the garden shed and the roof, again " * 6
    parts = [
        HEAD,
        "BEGIN:VEVENT\r\nUID:large-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T090000Z\r\n"
        "DTEND:20260101T100000Z\r\nRRULE:FREQ=DAILY;COUNT=1000\r\nSUMMARY:standup\r\nEND:VEVENT\r\n",
    ]
    for i in range(overrides):
        day = (
            f"2026{1 + i // 28:02d}{1 + i % 28:02d}"
            if i < 12 * 28
            else f"2027{1 + (i - 336) // 28:02d}{1 + i % 28:02d}"
        )
        parts.append(
            f"BEGIN:VEVENT\r\nUID:large-1\r\nRECURRENCE-ID:{day}T090000Z\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART:{day}T100000Z\r\nDTEND:{day}T110000Z\r\nSUMMARY:standup {i}\r\n"
            f"DESCRIPTION:{words[:70]}\r\n {words[70:140]}\r\n {words[140:210]}\r\n {words[210:280]}\r\n"
            "END:VEVENT\r\n"
        )
    parts.append("END:VCALENDAR\r\n")
    return "".join(parts)


def main() -> int:
    from radicale import item as radicale_item
    from radicale.app import put

    from gk.dav import recurrence, validate

    recurrence.install()
    validate.install()
    events = frozenset({"VEVENT"})

    def store(text: str) -> tuple[str, str]:
        """Radicale's part of a PUT: read, then prepare (as ``put.ApplicationPartPut.do_PUT``)."""
        objects = radicale_item.read_components(text)
        items, *_, error = put.prepare(objects, "/u/c/x.ics", "text/calendar", False, True, 10**7, 10000)
        assert error is None, error
        (item,) = list(items)
        return item.serialize(), item.etag

    def twice(text: str) -> tuple[str, str]:
        validate.check_put(text.encode(), "VCALENDAR", events, 10000)
        return store(text)

    def handed(text: str) -> tuple[str, str]:
        with validate.handing(validate.check_put(text.encode(), "VCALENDAR", events, 10000)):
            return store(text)

    def median_ms(fn: Callable[[str], object], text: str, rounds: int) -> float:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn(text)
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    print(f"{'body':>22} {'parsed twice':>14} {'handed over':>13} {'ratio':>7}   (median ms)")
    for name, text, rounds in (("small", small(), SMALL_ROUNDS), ("large", large(), ROUNDS)):
        assert twice(text) == handed(text), name  # the same stored text and etag
        for fn in (twice, handed):  # warm up
            fn(text)
        a = median_ms(twice, text, rounds)
        b = median_ms(handed, text, rounds)
        label = f"{name} ({len(text.encode()):,} B)"
        print(f"{label:>22} {a:>14.3f} {b:>13.3f} {a / b:>6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
