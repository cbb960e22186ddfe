"""LIST / LSUB: pattern matching (``*`` any, ``%`` any but the delimiter) and mailbox attributes
(CHILDREN, SPECIAL-USE, and the RFC 5258 selection/return options SUBSCRIBED, SPECIAL-USE).
LIST-STATUS (RFC 5819) is the session's: it writes a STATUS line after each listed folder.

Subscriptions are names, not folders (RFC 3501 6.3.6): a subscribed name without a folder is
listed by LSUB as ``\\Noselect`` and by ``LIST (SUBSCRIBED)`` as ``\\NonExistent \\Subscribed``
(RFC 5258 5); a plain LIST does not show it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gk.mail.imap import utf7
from gk.mail.imap.response import string

DELIM = "/"


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    full = reference + pattern
    out = []
    for ch in full:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    rx = "".join(out)
    # INBOX is case-insensitive
    if full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in "/*%"):
        rx = "(?i:INBOX)" + "".join(out[5:])
    return re.compile("^" + rx + "$", re.DOTALL)


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
    regexes = [pattern_regex(reference, p) for p in patterns]
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
