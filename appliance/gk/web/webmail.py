"""Webmail (placeholder until the mailbox store lands)."""

from __future__ import annotations

from gk.web.app import Web


def register(web: Web) -> None:
    @web.app.get("/mail")
    def mail_home() -> str:
        web.require_user()
        return web.render("error.html", status=503, message="Webmail needs the mailbox store, not running yet.")
