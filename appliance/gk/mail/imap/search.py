"""SEARCH: RFC 3501 search keys (+ CONDSTORE's MODSEQ) → ``gk.mail.mailbox.query`` criteria;
ESEARCH's ``RETURN (MIN MAX COUNT ALL SAVE)`` (RFC 4731, RFC 5182) and its answer.

The session's view (its UID list) turns message sequence sets into UID ranges, so the whole
search runs as one SQL query in the index; BODY/TEXT use the FTS5 trigram table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gk.mail.imap.parser import Parser
from gk.mail.imap.protocol import MAX_SEARCH_DEPTH, MAX_SEARCH_KEYS, BadCommand, NoCommand, SeqSet, seq_text

Criteria = tuple[Any, ...]

_FLAG_KEYS = {
    "ANSWERED": ("flag", "\\Answered"),
    "DELETED": ("flag", "\\Deleted"),
    "DRAFT": ("flag", "\\Draft"),
    "FLAGGED": ("flag", "\\Flagged"),
    "SEEN": ("flag", "\\Seen"),
    "UNANSWERED": ("noflag", "\\Answered"),
    "UNDELETED": ("noflag", "\\Deleted"),
    "UNDRAFT": ("noflag", "\\Draft"),
    "UNFLAGGED": ("noflag", "\\Flagged"),
    "UNSEEN": ("noflag", "\\Seen"),
    "ALL": ("all",),
    # \Recent lives in the session, not the index: ("recent",) is replaced by the session's
    # recent UID ranges (resolve_recent) just before the search runs
    "RECENT": ("recent",),
    "NEW": ("and", [("recent",), ("noflag", "\\Seen")]),
    "OLD": ("not", ("recent",)),
}
_STRING_KEYS = {"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"}
_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}


class SearchParser:
    def __init__(
        self,
        p: Parser,
        seq_to_uids: Callable[[SeqSet], list[tuple[int, int]]],
        uid_ranges: Callable[[SeqSet], list[tuple[int, int]]],
    ):
        self.p = p
        self.seq_to_uids = seq_to_uids
        self.uid_ranges = uid_ranges
        self.charset = "utf-8"
        self.uses_modseq = False
        self.keys = 0

    def _text(self) -> str:
        raw = self.p.astring("a search string")
        try:
            return raw.decode(self.charset)
        except (UnicodeDecodeError, LookupError):
            return raw.decode("latin-1")

    def program(self) -> Criteria:
        """The search keys, at most ``MAX_SEARCH_KEYS`` of them nested at most ``MAX_SEARCH_DEPTH``
        deep (parentheses, NOT and OR): a bigger program is BAD before it costs anything."""
        p = self.p
        saved, p.max_depth = p.max_depth, MAX_SEARCH_DEPTH
        try:
            return self._program()
        finally:
            p.max_depth = saved

    def _program(self) -> Criteria:
        p = self.p
        if p.try_(b"CHARSET "):
            cs = p.astring("a charset").decode("ascii", "replace").upper()
            if cs not in ("UTF-8", "US-ASCII"):
                raise NoCommand("charset not supported", "BADCHARSET (UTF-8 US-ASCII)")
            self.charset = "utf-8" if cs == "UTF-8" else "ascii"
            p.sp()
        keys = [self.key()]
        while not p.at_end() and p.peek() != ord(")"):
            p.sp()
            keys.append(self.key())
        return keys[0] if len(keys) == 1 else ("and", keys)

    def key(self) -> Criteria:
        p = self.p
        self.keys += 1
        if self.keys > MAX_SEARCH_KEYS:
            raise BadCommand(f"more than {MAX_SEARCH_KEYS} search keys")
        c = p.peek()
        if c == ord("("):
            p.open_list()
            keys = [self.key()]
            while not p.close_list():
                p.sp()
                keys.append(self.key())
            return keys[0] if len(keys) == 1 else ("and", keys)
        if c is not None and (48 <= c <= 57 or c in (ord("*"), ord("$"))):
            return ("uids", self.seq_to_uids(p.seq_set_or_saved()))
        word = p.atom("a search key").upper()
        if word in _FLAG_KEYS:
            return _FLAG_KEYS[word]
        if word in _STRING_KEYS:
            p.sp()
            return (word.lower(), self._text())
        if word in _DATE_KEYS:
            p.sp()
            return (word.lower(), p.date())
        if word in ("LARGER", "SMALLER"):
            p.sp()
            return (word.lower(), p.number("a size"))
        if word in ("KEYWORD", "UNKEYWORD"):
            p.sp()
            return ("flag" if word == "KEYWORD" else "noflag", p.atom("a keyword"))
        if word == "HEADER":
            p.sp()
            name = p.astring("a header field name").decode("ascii", "replace")
            p.sp()
            return ("header", name, self._text())
        if word == "NOT":
            p.sp()
            p.enter("NOT")
            inner = self.key()
            p.leave()
            return ("not", inner)
        if word == "OR":
            p.sp()
            p.enter("OR")
            a = self.key()
            p.sp()
            b = self.key()
            p.leave()
            return ("or", a, b)
        if word == "UID":
            p.sp()
            return ("uids", self.uid_ranges(p.seq_set_or_saved()))
        if word == "MODSEQ":
            p.sp()
            if p.peek() == ord('"'):  # entry name and type: accepted and ignored
                p.quoted()
                p.sp()
                p.atom("an entry type")
                p.sp()
            self.uses_modseq = True
            return ("modseq", p.mod_sequence())
        raise BadCommand(f"unknown search key {word}")


def resolve_recent(c: Criteria, ranges: list[tuple[int, int]]) -> Criteria:
    """``c`` with every ``("recent",)`` replaced by ``("uids", ranges)`` (the session's \\Recent)."""
    kind = c[0]
    if kind == "recent":
        return ("uids", list(ranges))
    if kind == "and":
        return ("and", [resolve_recent(x, ranges) for x in c[1]])
    if kind == "or":
        return ("or", resolve_recent(c[1], ranges), resolve_recent(c[2], ranges))
    if kind == "not":
        return ("not", resolve_recent(c[1], ranges))
    return c


def seq_ranges_to_uids(ranges: list[tuple[int, int]], uids: Sequence[int]) -> list[tuple[int, int]]:
    out = []
    n = len(uids)
    for lo, hi in ranges:
        lo, hi = max(lo, 1), min(hi, n)
        if lo <= hi:
            out.append((uids[lo - 1], uids[hi - 1]))
    return out


RETURN_OPTIONS = ("MIN", "MAX", "COUNT", "ALL", "SAVE")


def return_options(p: Parser) -> set[str]:
    """ESEARCH's ``RETURN (…)`` list (after ``RETURN ``); ``()`` means ``(ALL)`` (RFC 4731 3.1)."""
    p.open_list()
    out: set[str] = set()
    while not p.close_list():
        if out:
            p.sp()
        opt = p.atom("a search return option").upper()
        if opt not in RETURN_OPTIONS:
            raise BadCommand(f"unknown search return option {opt}")
        out.add(opt)
    return out or {"ALL"}


def picked(options: set[str], found: list[int]) -> list[int]:
    """The matches RETURN ``options`` are about: all of them if ALL or COUNT is asked (or SAVE
    alone), else just the lowest (MIN) and/or highest (MAX) one. RFC 5182 2.4 saves these, and
    RFC 7162 3.1.5 reports the highest MODSEQ among them."""
    if not found or options & {"ALL", "COUNT"} or not options & {"MIN", "MAX"}:
        return found
    ends = {found[0]} if "MIN" in options else set()
    if "MAX" in options:
        ends.add(found[-1])
    return sorted(ends)


def esearch_line(tag: str, uid: bool, options: set[str], nums: list[int], modseq: int | None) -> bytes:
    """``* ESEARCH (TAG "a1") UID MIN 2 MAX 9 COUNT 3 ALL 2,7:9`` for the ascending ``nums``
    (UIDs or sequence numbers). No MIN, MAX or ALL when nothing matched (COUNT is 0)."""
    out = [f'* ESEARCH (TAG "{tag}")']
    if uid:
        out.append("UID")
    if nums and "MIN" in options:
        out.append(f"MIN {nums[0]}")
    if nums and "MAX" in options:
        out.append(f"MAX {nums[-1]}")
    if "COUNT" in options:
        out.append(f"COUNT {len(nums)}")
    if nums and "ALL" in options:
        out.append("ALL " + seq_text(nums))
    if modseq is not None and nums:
        out.append(f"MODSEQ {modseq}")
    return (" ".join(out) + "\r\n").encode()
