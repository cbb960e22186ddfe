"""Post/redirect/get for the web UI's forms: a form post that succeeded answers ``303 See Other``
to the page to show, with a one-time message ("flash") kept in the session until that page is
rendered; reloading the page then repeats only the GET, never the post. A post that failed
validation re-renders its page with a 4xx and the values entered (the handlers' own business).

A flash is a few strings in the session's server-side data (``web.sqlite3``), written once on the
post and removed by the GET that shows it: one small SQLite write each way. A secret shown once
(a new app password or API token) rides the same way and is deleted by the page that shows it.
"""

from __future__ import annotations

from typing import NoReturn

import bottle

from gk.web.app import Web

KEY = "flash"


def redirect(web: Web, path: str, notice: str = "", **extra: str) -> NoReturn:
    """Answer the post with ``303`` to ``path``; ``notice`` (and ``extra`` values) shown there once."""
    message = {k: v for k, v in {"notice": notice, **extra}.items() if v}
    if message:
        sess = web.session()
        assert sess is not None
        sess.data[KEY] = message
        web.sessions.save_data(sess)
    raise bottle.redirect(path, 303)


def take(web: Web) -> dict[str, str]:
    """The message left by the post that redirected here (removed: a reload shows it no more)."""
    sess = web.session(create=False)
    if sess is None or KEY not in sess.data:
        return {}
    message = sess.data.pop(KEY)
    web.sessions.save_data(sess)
    return {str(k): str(v) for k, v in message.items()} if isinstance(message, dict) else {}
