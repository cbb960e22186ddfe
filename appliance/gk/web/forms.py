"""Reading form fields as text (bottle hands out latin-1 by default; we want UTF-8)."""

from __future__ import annotations

import bottle

MAX_FIELD = 100_000


def raw(name: str) -> str:
    value = bottle.request.forms.getunicode(name, default="") or ""
    return value[:MAX_FIELD]


def text(name: str) -> str:
    return raw(name).strip()


def all_of(name: str) -> list[str]:
    return [v.encode("latin-1").decode("utf-8", "replace") for v in bottle.request.forms.getall(name)]
