"""LIST patterns (``gk.mail.imap.listing.Pattern``): the same answers as the regular expression
they replaced, on random patterns and names, and linear time on the patterns that made that
expression backtrack for minutes with the hub held."""

from __future__ import annotations

import random
import re
import time

from gk.mail.imap.listing import Pattern


def reference_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """The former implementation (correct, but backtracking)."""
    full = reference + pattern
    out = [".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch) for ch in full]
    rx = "".join(out)
    if full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in "/*%"):
        rx = "(?i:INBOX)" + "".join(out[5:])
    return re.compile("^" + rx + "$", re.DOTALL)


def test_same_answers_as_the_regular_expression():
    rnd = random.Random(7)
    alphabet = "ab/*%Ii"
    names = ["INBOX", "inbox", "Inbox/a", "INBOX/b/a", "a", "b", "a/b", "ab/ba", "", "/", "a//b", "Sent", "é/ü"]
    names += ["".join(rnd.choice("abI/") for _ in range(rnd.randrange(0, 9))) for _ in range(200)]
    for _ in range(600):
        pattern = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 8)))
        reference = rnd.choice(["", "a/", "INBOX/", "inbox"])
        mine, theirs = Pattern(reference, pattern), reference_regex(reference, pattern)
        for name in names:
            assert mine.match(name) == bool(theirs.match(name)), (reference, pattern, name)
    for pattern, name, want in [
        ("*", "a/b", True),
        ("%", "a/b", False),
        ("%/%", "a/b", True),
        ("inbox", "INBOX", True),
        ("INBOX*", "INBOX/x", True),
        ("inboxes", "INBOXES", False),
        ("*a%", "xa/ya", True),
        ("a%*%b", "a/x/b", True),
    ]:
        assert Pattern("", pattern).match(name) is want, (pattern, name)


def test_patterns_that_backtrack_take_linear_time():
    long_name = "a" * 300
    started = time.monotonic()
    for pattern in ("*" * 5000 + "x", "*a" * 30 + "b", "%a" * 30 + "b", "*%" * 3000 + "b", "a*" * 40_000):
        p = Pattern("", pattern)
        assert not p.match(long_name + "c") and not p.match("INBOX")
    assert time.monotonic() - started < 2
