"""UI strings in the viewer's language, from the gettext catalog in ``gk.locale``.

Language: the page's ``?lang=`` switch, else the logged-in user's setting (``users.language``),
else the one chosen with the switch before (a cookie), else the best of the browser's
``Accept-Language``, else English (``gk.web.app.Web.lang``). A string missing from a catalog shows in English (the
translation-coverage test, tests/unit/test_i18n_catalog.py, keeps that from happening).

``translator(lang)`` is the ``_`` of templates and route code: ``_("text")`` translates,
``_("{n} messages", n=3)`` translates and then fills the ``{placeholders}`` (``str.format``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from gk.locale import N_, catalog

LANGUAGES = {"en": "English", "fr": "Français"}

# The special folders' display names (their IMAP names stay English: clients map them by the
# RFC 6154 special-use flags, gk.mail.mailbox.store.SPECIAL_USE). Other folders show as named.
FOLDER_NAMES = {
    "INBOX": N_("Inbox"),
    "Sent": N_("Sent"),
    "Drafts": N_("Drafts"),
    "Trash": N_("Trash"),
    "Junk": N_("Junk"),
    "Archive": N_("Archive"),
}

__all__ = ["LANGUAGES", "N_", "format_datetime", "folder_name", "format_duration", "known", "negotiate", "translator"]

# Kept in the catalog for code that translates them from its own unmarked tables: the webmail's
# notices (gk.web.webmail, being reworked for issue 10 part 7: it will mark them itself) and the
# wizard's Back links (issue 10 part 1).
PENDING = (N_("Message sent."), N_("Back"))


def negotiate(accept_language: str, user_language: str = "") -> str:
    if user_language in LANGUAGES:
        return user_language
    best, best_q = "en", -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower()[:2]
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best


def translator(lang: str) -> Callable[..., str]:
    cat = catalog(lang)

    def gettext(text: str, **kw: object) -> str:
        out = cat.gettext(text) if text else text  # gettext("") is the catalog's header
        return out.format(**kw) if kw else out

    return gettext


def known(lang: str, text: str) -> bool:
    """Whether ``text`` is in the catalog of ``lang`` (English knows everything): a message that
    comes from elsewhere (a library, another feature) is not shown untranslated in French."""
    return lang == "en" or bool(text) and text in getattr(catalog(lang), "_catalog", {})


def format_datetime(when: dt.datetime | None, lang: str, seconds: bool = True) -> str:
    """A date and time as the viewer's language writes it (2026-11-29 16:05 in English,
    29/11/2026 16:05 in French), in the zone ``when`` carries (the owner's: ``gk.localtime``)."""
    if when is None:
        return "-"
    time = when.strftime("%H:%M:%S" if seconds else "%H:%M")
    return translator(lang)(
        N_("{year}-{month:02d}-{day:02d} {time}"), year=when.year, month=when.month, day=when.day, time=time
    )


def format_duration(seconds: float, lang: str) -> str:
    """An uptime: "3d 4h 05m" in English, "3 j 4 h 05 min" in French."""
    _ = translator(lang)
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m = s // 60
    if d:
        return _("{d}d {h}h {m:02d}m", d=d, h=h, m=m)
    return _("{h}h {m:02d}m", h=h, m=m)


def folder_name(name: str, lang: str) -> str:
    """A folder as the viewer reads it: "Sent" is "Envoyés" in French; the owner's own folders as named."""
    return translator(lang)(FOLDER_NAMES[name]) if name in FOLDER_NAMES else name
