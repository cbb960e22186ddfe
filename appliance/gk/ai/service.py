"""The assistant inside ``gk serve``: ``ctx.services.maybe(AIService)``, the runtime, the tokens, ``/v1``.

``api`` is the ``/v1`` app, mounted by the web service (declared in ``gk.features``). Idle cost: one greenlet
waiting on an event and a bottle app; no llama.cpp, no model, no database open until the
first request (``ai.sqlite3`` is opened on the first authenticated call).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent.threadpool

from gk.ai.conversations import ConversationStore
from gk.ai.runtime import Request, Runtime, RuntimeSettings
from gk.ai.tokens import TokenStore

if TYPE_CHECKING:
    import bottle

    from gk.context import AppContext

log = logging.getLogger("gk.ai")


@dataclass
class PullState:
    """One download or import started from the web UI, as its progress bar shows it."""

    name: str  # a catalogue id, or the path of an offline file
    done: int = 0
    total: int = 0
    error: str = ""
    finished: bool = False
    stop: bool = False

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


class Pulls:
    """Downloads run on a native thread of their own (a 2 GB file's reads, hashing and fsync never
    touch the hub, nor the I/O pool a mail ``250`` waits on); the page polls ``states``."""

    def __init__(self, svc: AIService):
        self.svc = svc
        self.states: dict[str, PullState] = {}
        self._pool: gevent.threadpool.ThreadPool | None = None
        self._lock = threading.Lock()

    def running(self) -> bool:
        return any(not s.finished for s in self.states.values())

    def start(self, name: str, offline: Path | None = None) -> PullState:
        with self._lock:
            state = self.states.get(name)
            if state is not None and not state.finished:
                return state
            state = self.states[name] = PullState(name)
        if self._pool is None:
            self._pool = gevent.threadpool.ThreadPool(1)
        self._pool.spawn(self._run, state, offline)
        return state

    def _run(self, state: PullState, offline: Path | None) -> None:
        from gk.ai import catalogue, download, models

        def progress(done: int, total: int) -> None:
            state.done, state.total = done, total

        target = models.models_dir(self.svc.data_dir)
        try:
            entries = catalogue.cached(self.svc.cfg.catalogue)
            if offline is not None:
                path = download.import_file(offline, target, entries, progress=progress)
            else:
                entry = catalogue.find(entries, state.name)
                if entry is None:
                    raise download.DownloadError(f"no model {state.name!r} in the catalogue")
                path = download.fetch(
                    entry, target, self.svc.cfg.download_url_base, self.svc.cfg.offline_dirs,
                    progress=progress, should_stop=lambda: state.stop,
                )  # fmt: skip
            try:
                models.inspect(path)
            except models.ModelError:
                path.unlink(missing_ok=True)
                raise
            log.info("ai: installed %s", path.name)
        except (download.DownloadError, models.ModelError, catalogue.CatalogueError, OSError) as exc:
            state.error = str(exc)
            log.warning("ai: pull of %s failed: %s", state.name, exc)
        finally:
            state.finished = True

    def stop(self) -> None:
        for s in self.states.values():
            s.stop = True  # each pull stops at its next block, keeping its .part for a resume


class AIService:
    name = "ai"

    def __init__(self, data_dir: Path, cfg: Any):
        self.data_dir = Path(data_dir)
        self.cfg = cfg
        self.max_tokens: int = cfg.max_tokens
        self.runtime = Runtime(self.data_dir, RuntimeSettings.from_config(cfg))
        self._tokens: TokenStore | None = None
        self._conversations: ConversationStore | None = None
        # the web assistant's answers being generated, by (owner, conversation): its Stop button
        # cancels them, and a second window on the same conversation does not start another
        self.active: dict[tuple[str, int], Request] = {}
        self.pulls = Pulls(self)
        self._api: bottle.Bottle | None = None  # gk.ai.api's bottle app, made on the first /v1 request

    def api(self, environ: dict[str, Any], start_response: Any) -> Any:
        """WSGI app of ``/v1`` (the OpenAI-compatible API), loaded on its first request, not at start."""
        if self._api is None:
            from gk.ai import api

            self._api = api.make_app(self)
        return self._api(environ, start_response)

    @property
    def tokens(self) -> TokenStore:
        if self._tokens is None:
            self._tokens = TokenStore.for_data_dir(self.data_dir)
        return self._tokens

    @property
    def conversations(self) -> ConversationStore:
        if self._conversations is None:
            self._conversations = ConversationStore.for_data_dir(self.data_dir)
        return self._conversations

    def status(self) -> dict[str, Any]:
        return self.runtime.status()

    def stop(self, grace: float) -> None:
        self.pulls.stop()
        self.runtime.stop()
        if self._tokens is not None:
            self._tokens.close()
        if self._conversations is not None:
            self._conversations.close()


def start(ctx: AppContext) -> AIService | None:
    if not ctx.config.ai.enabled:
        return None
    svc = AIService(ctx.data_dir, ctx.config.ai)
    return svc
