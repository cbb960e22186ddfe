"""``/admin/models``: the assistant's models for the administrator — the catalogue with what fits
this board, download with a progress bar (``AIService.pulls``: a native thread per download,
polled by htmx every second), the offline files found on the boot partition or a USB stick
(imported with the same sha256 check), which one the assistant uses, and removal.
"""

from __future__ import annotations

from pathlib import Path

import bottle

from gk import settings
from gk.locale import N_
from gk.web import forms
from gk.web.app import Web
from gk.web.assistant import _svc

HTMX_STOP_POLLING = 286


def _ram_mb() -> int:
    from gk.web.wizard import total_ram_mb

    return total_ram_mb()


def page(web: Web, notice: str = "", error: str = "") -> str:
    from gk.ai import catalogue, download, models

    svc = _svc(web)
    cfg = svc.cfg
    try:
        entries = catalogue.cached(cfg.catalogue)
    except catalogue.CatalogueError as exc:
        entries, error = [], str(exc)
    ram = _ram_mb()
    fits = {e.id for e in catalogue.fitting(entries, ram)}
    installed = {p.name: p for p in models.list_models(svc.data_dir)}
    in_use = svc.runtime.default_model()
    known = {e.file for e in entries}
    return web.render(
        "assistant/models.html",
        entries=entries,
        fits=fits,
        default=catalogue.default_for(entries, ram),
        installed=installed,
        others=[p for name, p in sorted(installed.items()) if name not in known],
        in_use=in_use,
        ram=ram,
        offline=[p for p in download.offline_files(cfg.offline_dirs) if p.name not in installed],
        pulls=svc.pulls.states,
        polling=svc.pulls.running(),
        status=svc.runtime.status(),
        notice=notice,
        error=error,
    )


def index(web: Web) -> str:
    return page(web)


def pull(web: Web) -> str:
    from gk.ai import catalogue, download

    svc = _svc(web)
    name = forms.text("model")
    offline = forms.text("offline")
    if offline:
        path = Path(offline)
        if path not in download.offline_files(svc.cfg.offline_dirs):
            raise bottle.HTTPError(400, N_("Choose one of the listed files."))
        svc.pulls.start(str(path), offline=path)
    else:
        entry = catalogue.find(catalogue.cached(svc.cfg.catalogue), name)
        if entry is None:
            raise bottle.HTTPError(400, N_("Choose one of the listed models."))
        if not entry.downloadable:
            bottle.response.status = 400
            return page(web, error=web.gettext("This model has no pinned sha256 yet: it cannot be downloaded safely."))
        svc.pulls.start(entry.id)
    raise bottle.redirect("/admin/models", 303)


def stop_pull(web: Web) -> None:
    """Stop a download at its next block; its .part stays, so Download resumes it."""
    state = _svc(web).pulls.states.get(forms.text("model"))
    if state is None:
        raise bottle.HTTPError(404, N_("Not found"))
    state.stop = True
    raise bottle.redirect("/admin/models", 303)


def progress(web: Web) -> str:
    svc = _svc(web)
    if not svc.pulls.running():
        bottle.response.status = HTMX_STOP_POLLING
    return web.render("assistant/pulls.html", pulls=svc.pulls.states, polling=svc.pulls.running())


def _file(web: Web) -> Path:
    from gk.ai import models

    path = models.resolve(_svc(web).data_dir, forms.text("file"))
    if path is None:
        raise bottle.HTTPError(404, N_("Not found"))
    return path


def use(web: Web) -> None:
    path = _file(web)
    settings.of(web.data_dir).update(ai_model=path.name)
    raise bottle.redirect("/admin/models", 303)


def remove(web: Web) -> str:
    svc = _svc(web)
    path = _file(web)
    if svc.runtime.loaded_path == path:
        svc.runtime.unload()
    path.unlink(missing_ok=True)
    if settings.of(web.data_dir).ai_model() == path.name:
        settings.of(web.data_dir).update(ai_model="")
    return page(web, notice=web.gettext("Removed {name}.", name=path.name))
