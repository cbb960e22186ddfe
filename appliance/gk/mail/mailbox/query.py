"""Search criteria → one SQL query over a folder's index (messages + FTS5 trigram table).

Criteria are plain tuples so IMAP SEARCH and the webmail build them without knowing SQL:

``("all",)`` ``("and", [c, …])`` ``("or", a, b)`` ``("not", c)`` ``("uids", [(lo, hi), …])``
``("flag", "\\Seen")`` ``("noflag", "\\Seen")`` ``("before"|"on"|"since", date)`` on the internal
date's calendar date in its own zone, ``("sentbefore"|"senton"|"sentsince", date)`` on the Date
header's date as written, ``("larger"|"smaller", n)``,
``("from"|"to"|"cc"|"bcc"|"subject", text)``, ``("header", name, text)``, ``("body"|"text", text)``,
``("modseq", n)``, ``("none",)``.

Substring matches (RFC 3501: case-insensitive substring) use the FTS5 trigram tokenizer: a
string of 3+ characters is an indexed phrase query; shorter strings fall back to ``LIKE`` on
the stored FTS content. ``("header", name, text)`` narrows by the headers column, then the SQL
function ``gk_header`` (registered by the store) checks that field in the file itself.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from typing import Any

Criteria = tuple[Any, ...]

_DAY = 86400


def _day_start(d: dt.date) -> int:
    return calendar.timegm(d.timetuple())


def _fts(column: str, text: str, params: list[Any]) -> str:
    if len(text) >= 3:
        params.append(f'{{{column}}} : "' + text.replace('"', '""') + '"')
        return "m.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)"
    params.append("%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    return f"m.id IN (SELECT rowid FROM fts WHERE {column} LIKE ? ESCAPE '\\')"


def _uid_ranges(ranges: list[tuple[int, int]], params: list[Any]) -> str:
    """``m.uid`` in any of ``ranges``. Single UIDs go into one ``IN (json_each)`` set, real ranges
    into a balanced OR tree: a long chain of ORs (a sequence set like ``1,3,5,…`` of over 1,000
    ranges) exceeds SQLite's expression depth limit of 1,000."""
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    singles = [lo for lo, hi in merged if lo == hi]
    spans = [(lo, hi) for lo, hi in merged if lo != hi]
    terms: list[str] = []
    if singles:
        params.append(json.dumps(singles))
        terms.append("m.uid IN (SELECT value FROM json_each(?))")
    for lo, hi in spans:
        terms.append("(m.uid BETWEEN ? AND ?)")
        params += [lo, hi]
    if not terms:
        return "0"
    while len(terms) > 1:
        terms = [f"({' OR '.join(terms[i : i + 8])})" for i in range(0, len(terms), 8)]
    return terms[0]


def compile_criteria(c: Criteria, params: list[Any]) -> str:
    """SQL boolean expression over ``messages m`` for criteria ``c`` (params appended)."""
    kind = c[0]
    if kind == "all":
        return "1"
    if kind == "none":
        return "0"
    if kind == "and":
        parts = [compile_criteria(x, params) for x in c[1]]
        return "(" + " AND ".join(parts) + ")" if parts else "1"
    if kind == "or":
        return f"({compile_criteria(c[1], params)} OR {compile_criteria(c[2], params)})"
    if kind == "not":
        return f"(NOT {compile_criteria(c[1], params)})"
    if kind == "uids":
        return _uid_ranges(c[1], params)
    if kind in ("flag", "noflag"):
        params.append(" " + c[1].lower() + " ")
        expr = "instr(lower(m.flags), ?) > 0"
        return expr if kind == "flag" else f"NOT ({expr})"
    if kind in ("before", "on", "since", "sentbefore", "senton", "sentsince"):
        # RFC 3501 6.4.4: dates "disregarding time and timezone", i.e. the calendar date where
        # the message is: the internal date's seconds moved into its own zone (tzoffset, minutes
        # east of UTC), and the Date header's date as written (sentdate: its midnight, UTC)
        col = "m.sentdate" if kind.startswith("sent") else "(m.internaldate + 60 * m.tzoffset)"
        start = _day_start(c[1])
        op = kind.removeprefix("sent")
        if op == "before":
            params.append(start)
            return f"({col} IS NOT NULL AND {col} < ?)"
        if op == "since":
            params.append(start)
            return f"({col} IS NOT NULL AND {col} >= ?)"
        params += [start, start + _DAY]
        return f"({col} >= ? AND {col} < ?)"
    if kind == "larger":
        params.append(c[1])
        return "m.size > ?"
    if kind == "smaller":
        params.append(c[1])
        return "m.size < ?"
    if kind == "modseq":
        params.append(c[1])
        return "m.modseq >= ?"
    if kind in ("from", "to", "cc", "bcc", "subject"):
        col = {"from": "hfrom", "to": "hto", "cc": "hcc", "bcc": "hbcc", "subject": "subject"}[kind]
        return _fts(col, c[1], params)
    if kind == "header":
        # FTS narrows (when the text is long enough); gk_header() reads the field from the file
        pre = _fts("headers", c[2], params) + " AND " if len(c[2]) >= 3 else ""
        params += [c[1], c[2]]
        return f"({pre}gk_header(m.folder_id, m.name, ?, ?))"
    if kind == "body":
        return _fts("body", c[1], params)
    if kind == "text":
        return f"({_fts('body', c[1], params)} OR {_fts('headers', c[1], params)})"
    raise ValueError(f"unknown search criterion {kind!r}")
