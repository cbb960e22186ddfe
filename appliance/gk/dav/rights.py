"""Radicale rights plugin: each user owns ``/dav/<address>/`` and the collections directly in it.

Paths are ``/<owner>/<collection>/<item>``: the owner may read and write their principal
("RW": create and delete collections in it) and their collections ("rw": items). Nobody else
sees anything of it: Radicale answers 403 and leaves another user's principal out of listings.

Shared calendars (the wizard's "Family" calendar, calendars an owner shares with chosen
members) plug in through ``shares``: a callable ``(user, owner, collection) -> "r" | "rw" | ""``
(``gk.dav.defaults.Shares.rights``, the ``shares`` table) asked only for collections of other
owners. A member's "rw" is items only: Radicale's "d" is added, which forbids deleting the
collection itself (``permit_delete_collection`` stays on for owners). Radicale's own
``sharing`` module stays off: it keeps its own CSV/file database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from radicale import pathutils, rights

SharePolicy = Callable[[str, str, str], str]


def no_shares(user: str, owner: str, collection: str) -> str:
    return ""


class Rights(rights.BaseRights):
    def __init__(self, configuration: Any, shares: SharePolicy = no_shares):
        super().__init__(configuration)
        self._shares = shares

    @classmethod
    def factory(cls, shares: SharePolicy = no_shares) -> Any:
        return lambda configuration: cls(configuration, shares)

    def authorization(self, user: str, user_groups: set[str], path: str) -> str:
        if not user:
            return ""
        sane = pathutils.strip_path(path)
        if not sane:
            return "R"  # the root: lists only what the user may see
        owner, _, rest = sane.partition("/")
        if "/" in rest:
            return ""  # no deeper nesting than /owner/collection/
        if owner == user:
            return "rw" if rest else "RW"
        if rest:
            granted = "".join(p for p in self._shares(user, owner, rest) if p in "rw")
            return granted + "d" if "w" in granted else granted
        return ""
