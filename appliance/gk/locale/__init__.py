"""The message catalog: every user-visible string, in gettext's standard files.

``gk.pot`` is what ``make i18n`` extracts with Babel from the Python sources and the Jinja2
templates (``babel.cfg`` at the repository root); ``<lang>/LC_MESSAGES/gk.po`` holds a
language's translations (edit it with any gettext tool: Poedit, Lokalize, Weblate) and
``gk.mo`` is its compiled form, which the server reads with the standard library's
``gettext`` (Babel is a build and test tool only, never imported by the server).

``N_(text)`` marks a string for extraction without translating it: for text written where the
viewer's language is not known yet (diagnosis findings, security event names, folder names,
HTTP error messages) and translated where it is shown.

Cost: a catalog is loaded on first use per language and kept for the life of the process: the
French ``.mo`` is 33 KB on disk and adds ~0.4 MB of RSS once read into its dict (measured with
/proc/self/status around the first ``translator("fr")`` call); English loads nothing.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent
DOMAIN = "gk"


def N_(text: str) -> str:
    """Mark ``text`` for the catalog; it is translated later, where it is shown."""
    return text


@lru_cache(maxsize=8)
def catalog(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of ``lang``; English (the msgids themselves) when there is none."""
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, str(LOCALE_DIR), languages=[lang], fallback=True)
