"""The CPU of one accepted CalDAV PUT between the body and the row: ``gk.dav.validate``'s check,
then Radicale's ``read_components`` and ``put.prepare`` (its check, the item's text, etag and
time range), in one process, for a small event (~200 bytes) and two of ~214 KB: one long
DESCRIPTION (an agenda pasted in), and a daily series with 455 moved occurrences with
descriptions (as a long-lived meeting becomes; its time range walks the series).

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


def long_text(size: int = 205_000) -> str:
    """One event whose DESCRIPTION carries ``size`` bytes (an agenda pasted in), folded at 75."""
    text = ("minutes of the meeting, item by item; " * (size // 38 + 1))[:size]
    folded = "\r\n ".join(text[i : i + 74] for i in range(0, len(text), 74))
    return (
        HEAD + "BEGIN:VEVENT\r\nUID:long-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260310T090000Z\r\n"
        f"DTEND:20260310T100000Z\r\nSUMMARY:minutes\r\nDESCRIPTION:{folded}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


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

    def medians(text: str, rounds: int) -> tuple[float, float]:
        """Median ms of each path, the two alternating round by round (a load that changes during
        the run weighs on both alike)."""
        a, b = [], []
        for _ in range(rounds):
            for fn, times in ((twice, a), (handed, b)):
                t0 = time.perf_counter()
                fn(text)
                times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(a), statistics.median(b)

    print(f"{'body':>26} {'parsed twice':>14} {'handed over':>13} {'ratio':>7}   (median ms)")
    cases = (("small", small(), SMALL_ROUNDS), ("long text", long_text(), ROUNDS), ("455 overrides", large(), ROUNDS))
    for name, text, rounds in cases:
        assert twice(text) == handed(text), name  # the same stored text and etag
        a, b = medians(text, rounds)
        label = f"{name} ({len(text.encode()):,} B)"
        print(f"{label:>26} {a:>14.3f} {b:>13.3f} {a / b:>6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
