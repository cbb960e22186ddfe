"""The assistant inside ``gk serve``: ``ctx.services.maybe(AIService)``, the runtime, the tokens, ``/v1``.

``api`` is the ``/v1`` app, mounted by the web service (declared in ``gk.features``). Idle cost: one greenlet
waiting on an event and a bottle app; no llama.cpp, no model, no database open until the
first request (``ai.sqlite3`` is opened on the first authenticated call).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gk.ai import api
from gk.ai.runtime import Runtime, RuntimeSettings
from gk.ai.tokens import TokenStore

if TYPE_CHECKING:
    from gk.context import AppContext

log = logging.getLogger("gk.ai")


class AIService:
    name = "ai"

    def __init__(self, data_dir: Path, cfg: Any):
        self.data_dir = Path(data_dir)
        self.cfg = cfg
        self.max_tokens: int = cfg.max_tokens
        self.runtime = Runtime(self.data_dir, RuntimeSettings.from_config(cfg))
        self._tokens: TokenStore | None = None
        self.api = api.make_app(self)

    @property
    def tokens(self) -> TokenStore:
        if self._tokens is None:
            self._tokens = TokenStore.for_data_dir(self.data_dir)
        return self._tokens

    def status(self) -> dict[str, Any]:
        return self.runtime.status()

    def stop(self, grace: float) -> None:
        self.runtime.stop()
        if self._tokens is not None:
            self._tokens.close()


def start(ctx: AppContext) -> AIService | None:
    if not ctx.config.ai.enabled:
        return None
    svc = AIService(ctx.data_dir, ctx.config.ai)
    return svc
