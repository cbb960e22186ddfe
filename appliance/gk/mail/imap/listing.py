"""LIST / LSUB: pattern matching (``*`` any, ``%`` any but the delimiter) and mailbox attributes
(CHILDREN, SPECIAL-USE, and the RFC 5258 selection/return options SUBSCRIBED, SPECIAL-USE).
LIST-STATUS (RFC 5819) is the session's: it writes a STATUS line after each listed folder.

Subscriptions are names, not folders (RFC 3501 6.3.6): a subscribed name without a folder is
listed by LSUB as ``\\Noselect`` and by ``LIST (SUBSCRIBED)`` as ``\\NonExistent \\Subscribed``
(RFC 5258 5); a plain LIST does not show it."""

from __future__ import annotations

from dataclasses import dataclass

from gk.mail.imap import utf7
from gk.mail.imap.response import string

DELIM = "/"


class Pattern:
    """A LIST pattern (``reference + pattern``): ``*`` matches anything, ``%`` anything but the
    delimiter, ``INBOX`` at the start in any case. Matched by simulating the pattern's automaton
    with bit masks (one bit per token), in time linear in the name: a regular expression of it
    backtracks, and ``LIST "" "***…x"`` (5,000 stars) or ``"*a*a…*b"`` against a long folder
    name held the hub at 100% CPU for minutes (every other session with it)."""

    __slots__ = ("literals", "accept", "star", "pct", "wild", "lit")

    def __init__(self, reference: str, pattern: str):
        full = reference + pattern
        fold = full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in "/*%")
        tokens: list[str] = []
        for ch in full:
            if ch in "*%" and tokens and tokens[-1] in "*%":
                tokens[-1] = "*" if "*" in (ch, tokens[-1]) else "%"  # a run of wildcards is one
            else:
                tokens.append(ch)
        self.literals = sum(1 for t in tokens if t not in "*%")
        self.accept = 1 << len(tokens)
        self.star = self.pct = 0
        self.lit: dict[str, int] = {}
        for i, t in enumerate(tokens):
            if t == "*":
                self.star |= 1 << i
            elif t == "%":
                self.pct |= 1 << i
            elif fold and i < 5:
                for c in (t.upper(), t.lower()):
                    self.lit[c] = self.lit.get(c, 0) | 1 << i
            else:
                self.lit[t] = self.lit.get(t, 0) | 1 << i
        self.wild = self.star | self.pct

    def match(self, name: str) -> bool:
        if self.literals > len(name):  # every literal consumes one character
            return False
        wild, star, pct, lit = self.wild, self.star, self.pct, self.lit
        states = 1 | (1 & wild) << 1  # a wildcard may match nothing (never two in a row)
        for ch in name:
            nxt = (states & star) | (states & pct if ch != DELIM else 0) | (states & lit.get(ch, 0)) << 1
            states = nxt | (nxt & wild) << 1
            if not states:
                return False
        return bool(states & self.accept)


@dataclass
class Listed:
    name: str
    special: str | None
    subscribed: bool
    exists: bool = True  # False: only a subscribed name (its folder was deleted or never made)


def list_lines(
    folders: list[Listed],
    reference: str,
    patterns: list[str],
    command: str = "LIST",
    select_subscribed: bool = False,
    select_special: bool = False,
    return_subscribed: bool = False,
    return_special: bool = True,
) -> list[tuple[str, bytes]]:
    """(folder name, LIST line) of each folder listed, in order."""
    names = {f.name for f in folders if f.exists}
    lines: list[tuple[str, bytes]] = []
    regexes = [Pattern(reference, p) for p in patterns]
    seen: set[str] = set()
    for f in folders:
        if not any(r.match(f.name) for r in regexes) or f.name in seen:
            continue
        if (select_subscribed or command == "LSUB") and not f.subscribed:
            continue
        if select_special and not f.special:
            continue
        if not f.exists and not (select_subscribed or command == "LSUB"):
            continue
        seen.add(f.name)
        attrs = []
        if not f.exists:
            attrs.append("\\Noselect" if command == "LSUB" else "\\NonExistent")
        else:
            has_kids = any(n.startswith(f.name + DELIM) for n in names)
            attrs.append("\\HasChildren" if has_kids else "\\HasNoChildren")
        if f.special and (return_special or select_special):
            attrs.append(f.special)
        if f.subscribed and (return_subscribed or select_subscribed):
            attrs.append("\\Subscribed")
        wire = f.name if f.name == "INBOX" else utf7.encode(f.name)
        lines.append((f.name, f'* {command} ({" ".join(attrs)}) "{DELIM}" '.encode() + string(wire) + b"\r\n"))
    if command == "LSUB":
        # RFC 3501 6.3.9: with "%", a subscribed "a/b/c" under an unsubscribed "a" that the
        # pattern matches makes LSUB return "a", flagged \Noselect
        for f in folders:
            if not f.subscribed or any(r.match(f.name) for r in regexes):
                continue
            parts = f.name.split(DELIM)
            for i in range(1, len(parts)):
                parent = DELIM.join(parts[:i])
                if parent in seen or not any(r.match(parent) for r in regexes):
                    continue
                seen.add(parent)
                wire = parent if parent == "INBOX" else utf7.encode(parent)
                lines.append((parent, b'* LSUB (\\Noselect) "/" ' + string(wire) + b"\r\n"))
    return lines
