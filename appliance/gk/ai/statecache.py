"""The saved KV states of recent conversations (``[ai] state_cache_mb``), kept within their budget.

A conversation that comes back after another one used the context is restored from its saved
KV state instead of being read again (``gk.ai.runtime``). llama-cpp-python's own
``LlamaRAMCache`` does that, but ``Llama.save_state`` stores with each KV state a copy of the
logits buffer (``scores``: up to ``n_batch`` rows of the whole vocabulary in float32, 155 MB for
Qwen2.5's 151,936 tokens at n_batch 256) that the cache's budget does not count, and that is
never read back: a restored state always decodes at least one token before sampling
(``Llama._requires_eval``). With a 64 MB budget, two saved conversations of a Qwen model held
300 MB more than that on a board with 2 GB, and every answer paid for the 155 MB copy.

``install`` gives a ``Llama`` a ``save_state`` that keeps one row of logits (``load_state``
assigns it to the rows it restores, which numpy broadcasts) and copies the KV state once
instead of three times, and a cache whose budget counts all that a state keeps. Imported only
when a model is loaded (it imports ``llama_cpp``).
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp
from llama_cpp.llama import LlamaState


def state_bytes(state: LlamaState) -> int:
    """What a saved state really keeps: its KV bytes, its tokens and its logits."""
    return len(state.llama_state) + int(state.input_ids.nbytes) + int(state.scores.nbytes)


class StateCache(llama_cpp.LlamaRAMCache):
    """``LlamaRAMCache`` (longest token prefix wins, least recently used goes first) whose budget
    counts every byte a state keeps."""

    @property
    def cache_size(self) -> int:
        return sum(state_bytes(s) for s in self.cache_state.values())


def save_state(llm: Any) -> LlamaState:
    """``Llama.save_state`` without the copy of the whole logits buffer (one row is kept)."""
    ctx = llm._ctx.ctx
    size = int(llama_cpp.llama_state_get_size(ctx))
    buffer = (ctypes.c_uint8 * size)()
    n = int(llama_cpp.llama_state_get_data(ctx, buffer, size))
    if n > size:
        raise RuntimeError("llama.cpp wrote more state than it announced")
    return LlamaState(
        input_ids=llm.input_ids.copy(),  # whole: load_state makes it the Llama's token buffer
        scores=llm._scores[-1:].copy(),
        n_tokens=llm.n_tokens,
        llama_state=ctypes.string_at(buffer, n),
        llama_state_size=n,
        seed=llm._seed,
    )


def install(llm: Any, capacity_bytes: int) -> StateCache:
    """Give ``llm`` a state cache of ``capacity_bytes`` and the lean ``save_state``."""
    cache = StateCache(capacity_bytes=capacity_bytes)
    llm.set_cache(cache)
    llm.save_state = lambda: save_state(llm)
    return cache
