"""The inference runtime: one model, one context, one native thread, one generation at a time.

Why a thread of its own: llama.cpp holds the calling thread for the whole generation. Run on
the gevent hub it stalled every session in the process for the generation (DESIGN.md: 495 ms
for 106 tokens); run in gevent's shared threadpool it would queue behind (and in front of) the
Maildir writes a mail ``250`` waits on. So ``Runtime`` uses ``gk.pools``' ``llm`` pool: a single
native thread that does every llama.cpp call (load, generate, unload), serialised, while the
hub keeps serving. ``n_threads`` = cores − 1 leaves the hub a core, and the inference thread runs
at ``[ai] nice`` (10: when the CPU is short, the hub and the mail pools get it first).

Requests wait in a FIFO on the hub (``position`` says where: 0 = generating, 1 = next…); the
dispatcher greenlet hands the head to the thread. Each token goes back to the waiting greenlet
with ``hub.loop.run_callback_threadsafe`` (an async watcher: wakes the hub without polling).
``Request.cancel()`` (a client gone) is seen before the next token is sampled (the logits
processor makes it the end of turn; a stream also stops at the next chunk), so a generation
stops within a token or two.

The model is loaded on first use, memory-mapped (the page cache holds the weights; nothing is
copied into the heap), after a memory check that refuses with the numbers (needed, available)
instead of letting the kernel's OOM killer take the whole mail server; it is unloaded (memory
returned with ``malloc_trim``) after ``idle_unload_seconds`` without requests. ``llama_cpp`` is
imported only then: the ~23 MB it costs is not paid by a box that never uses the assistant.
Because the one ``Llama`` keeps its evaluated tokens, a follow-up turn of the same conversation
re-evaluates only its new tokens (llama-cpp-python's prefix match); with ``state_cache_mb`` the
KV state of each answered conversation is also saved, and restored when that conversation
comes back after another one used the context.
"""

from __future__ import annotations

import collections
import gc
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.queue

from gk import pools
from gk.ai import models
from gk.ai.models import ModelError

log = logging.getLogger("gk.ai")

_ids = itertools.count(1)


class QueueFull(Exception):
    """More requests are waiting than ``[ai] max_queue``."""


class ContextOverflow(Exception):
    """The prompt does not fit in the context window."""


class Cancelled(Exception):
    """The request was cancelled before it produced a result."""


@dataclass
class RuntimeSettings:
    """What the runtime needs from ``[ai]`` (a plain copy, so tests can build one directly)."""

    model: str = ""
    context_size: int = 2048
    batch_size: int = 256
    threads: int = 0  # 0 = cores - 1
    nice: int = 10  # OS priority of the inference thread (and the llama.cpp threads it starts)
    scheduler: str = "normal"  # its Linux scheduling class: normal, batch or idle (lower_priority)
    idle_unload_seconds: float = 300.0
    min_free_mb: int = 64
    max_queue: int = 16
    state_cache_mb: int = 0  # saved KV states of recent conversations (0 = prefix match only)
    catalogue: str = ""  # [ai] catalogue: resolves a chosen catalogue id to its file

    @classmethod
    def from_config(cls, cfg: Any) -> RuntimeSettings:
        return cls(**{k: getattr(cfg, k) for k in cls.__dataclass_fields__ if hasattr(cfg, k)})

    @property
    def n_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 2) - 1)


@dataclass
class Request:
    """One chat completion: its parameters, and the stream of chunks coming back on the hub."""

    model: str
    params: dict[str, Any]
    stream: bool
    id: int = field(default_factory=lambda: next(_ids))
    cancelled: bool = False
    enqueued: float = field(default_factory=time.monotonic)
    started: float = 0.0
    finished: float = 0.0  # the inference thread let go of it (monotonic)
    tokens: int = 0  # sampled
    evaluated: int = 0  # read into the context (prompt and sampled tokens not already there)
    tokens_at_cancel: int = 0  # sampled when cancel() was called
    context_tokens: int = 0  # in the context after the request (its prompt and what was sampled)
    _out: gevent.queue.Queue = field(default_factory=gevent.queue.Queue, repr=False)

    def cancel(self) -> None:
        """Stop generating (seen by the inference thread at the next token) or leave the queue."""
        if not self.cancelled:
            self.tokens_at_cancel = self.tokens
        self.cancelled = True

    def _put(self, item: tuple[str, Any]) -> None:  # runs on the hub (a threadsafe callback)
        self._out.put_nowait(item)

    def chunks(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Stream mode: the OpenAI-shaped chunks as they come. Raises the runtime's error."""
        while True:
            kind, value = self._out.get(timeout=timeout)
            if kind == "chunk":
                yield value
            elif kind == "error":
                raise value
            else:
                return

    def next_events(self, timeout: float) -> list[tuple[str, Any]]:
        """What arrived since the last call (waiting up to ``timeout`` for the first): the web
        assistant coalesces the chunks that came while it rendered the previous ones, and wakes
        at least every ``timeout`` to show the queue position (and to notice a closed browser)."""
        try:
            items = [self._out.get(timeout=timeout)]
        except gevent.queue.Empty:
            return []
        while True:
            try:
                items.append(self._out.get_nowait())
            except gevent.queue.Empty:
                return items

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Non-stream mode: the whole completion."""
        out: dict[str, Any] | None = None
        for chunk in self.chunks(timeout):
            out = chunk
        if out is None:
            raise Cancelled("the request ended without a result")
        return out


class Runtime:
    """The one model and the queue in front of it. All public methods are called from greenlets."""

    def __init__(
        self,
        data_dir: Path,
        settings: RuntimeSettings,
        *,
        available_memory: Callable[[], int] = models.available_bytes,
    ):
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.available_memory = available_memory
        self.hub = gevent.get_hub()
        self.pool = pools.llm_pool()  # THE inference thread (gk/pools.py: never the I/O or CPU pool)
        self.pending: collections.deque[Request] = collections.deque()
        self.current: Request | None = None
        self._wake = gevent.event.Event()
        self.llm: Any = None
        self.loaded_path: Path | None = None
        self.last_used = time.monotonic()
        self._evaluated = 0
        self.stats: dict[str, Any] = {"loads": 0, "unloads": 0, "requests": 0, "tokens": 0, "last_error": ""}
        self._dispatcher = gevent.spawn(self._dispatch)

    # -- the greenlets' side ------------------------------------------------------------------
    def submit(self, model: str, params: dict[str, Any], *, stream: bool) -> Request:
        """Queue a chat completion (``params`` are ``Llama.create_chat_completion``'s)."""
        if len(self.pending) >= self.settings.max_queue:
            raise QueueFull(f"{len(self.pending)} requests are already waiting for the assistant")
        req = Request(model or self.default_model(), dict(params), stream)
        self.pending.append(req)
        self._wake.set()
        return req

    def position(self, req: Request) -> int:
        """0 = being generated, n = n-th in the queue, -1 = finished or cancelled."""
        if req is self.current:
            return 0
        try:
            return self.pending.index(req) + 1
        except ValueError:
            return -1

    def default_model(self) -> str:
        """The model chosen (``gk ai use``, the wizard, ``[ai] model``) or the first installed."""
        return models.in_use(self.data_dir, self.settings.model, self.settings.catalogue)

    def unload(self) -> None:
        """Unload now (on the inference thread, after the current generation)."""
        self.pool.apply(self._unload_now)

    def status(self) -> dict[str, Any]:
        return {
            "model": self.loaded_path.name if self.loaded_path else "",
            "loaded": self.llm is not None,
            "generating": self.current is not None,
            "queued": len(self.pending),
            "threads": self.settings.n_threads,
            "context_size": self.settings.context_size,
            **self.stats,
        }

    def stop(self) -> None:
        if self.current is not None:
            self.current.cancel()  # the thread stops at its next token
        self._dispatcher.kill(block=True, timeout=2)
        for req in self.pending:
            req._put(("error", Cancelled("the server is stopping")))
        self.pending.clear()
        if self.llm is not None:  # the inference thread is the process's (gk/pools.py): it stays
            self.pool.apply(self._unload_now)

    def _dispatch(self) -> None:
        while True:
            if not self.pending:
                self._wake.clear()
                timeout = None
                if self.llm is not None:
                    timeout = max(0.0, self.last_used + self.settings.idle_unload_seconds - time.monotonic())
                if not self._wake.wait(timeout) and self.llm is not None and not self.pending:
                    log.info("ai: unloading %s after %.0f s idle", self.loaded_path, self.settings.idle_unload_seconds)
                    self.pool.apply(self._unload_now)
                continue
            req = self.pending.popleft()
            if req.cancelled:
                req._put(("error", Cancelled("cancelled while queued")))
                continue
            self.current = req
            req.started = time.monotonic()
            self.stats["requests"] += 1
            try:
                self.pool.apply(self._run, (req,))
            except Exception as exc:  # the thread reports its own errors; this is the pool failing
                log.exception("ai: inference thread failed")
                req._put(("error", exc))
            finally:
                self.current = None
                self.last_used = req.finished = time.monotonic()
                log.info(
                    "ai: request %d %s: %d token(s) read, %d sampled in %.2f s, %d in the context%s",
                    req.id,
                    "cancelled" if req.cancelled else "done",
                    req.evaluated,
                    req.tokens,
                    self.last_used - req.started,
                    req.context_tokens,
                    f" ({req.tokens - req.tokens_at_cancel} after the cancel)" if req.cancelled else "",
                )

    # -- the inference thread's side (no gevent calls here but run_callback_threadsafe) ------
    def _post(self, req: Request, item: tuple[str, Any]) -> None:
        self.hub.loop.run_callback_threadsafe(req._put, item)

    def _run(self, req: Request) -> None:
        self._evaluated = 0
        lower_priority(self.settings.nice, self.settings.scheduler)
        try:
            llm = self._ensure_loaded(req.model)
            from llama_cpp import LogitsProcessorList

            params = dict(req.params)
            # applied here: llama-cpp-python drops a logits_processor given with logit_bias
            # (list.extend's None), and this processor is how cancellation gets in
            if grammar_text := params.pop("gk_grammar", None):  # gk.ai.toolcalls: one call, forced
                from llama_cpp import LlamaGrammar

                params["grammar"] = LlamaGrammar.from_string(grammar_text, verbose=False)
            bias = params.pop("logit_bias", None) or {}
            bias_ids = [i for i in bias if 0 <= i < llm.n_vocab()]
            bias_values = [bias[i] for i in bias_ids]
            constrained = "response_format" in params or "grammar" in params
            eos = llm.token_eos()

            def watch(_ids: Any, scores: Any) -> Any:
                # llama.cpp calls this (a ctypes callback: an exception raised here is swallowed)
                # before each token is sampled. A cancelled request is made to sample its end of
                # turn; a grammar-constrained one stops when the stream loop below breaks.
                req.tokens += 1
                if req.cancelled and not constrained and 0 <= eos < len(scores):
                    scores[:] = -float("inf")
                    scores[eos] = 0.0
                elif bias_ids:
                    scores[bias_ids] += bias_values
                return scores

            if bias_ids or not req.stream:
                # a ctypes callback per token costs ~10% of generation speed on a small model:
                # a stream without logit_bias is counted and cancelled per chunk instead
                params["logits_processor"] = LogitsProcessorList([watch])
            if req.stream:
                it = llm.create_chat_completion(**params, stream=True)
                try:
                    counted = "logits_processor" in params
                    for chunk in it:
                        if not counted:
                            req.tokens += 1
                        self._post(req, ("chunk", chunk))
                        if req.cancelled:
                            break
                finally:
                    it.close()
                self._post(req, ("done", None))
            else:
                result = llm.create_chat_completion(**params, stream=False)
                self._post(req, ("chunk", result))
                self._post(req, ("done", None))
        except ValueError as exc:
            err: Exception = exc
            if "exceed context window" in str(exc):
                err = ContextOverflow(f"{exc}: shorten the conversation")
            self.stats["last_error"] = str(err)
            self._post(req, ("error", err))
        except Exception as exc:
            self.stats["last_error"] = str(exc)
            self._post(req, ("error", exc))
        finally:
            req.evaluated = self._evaluated
            req.context_tokens = int(getattr(self.llm, "n_tokens", 0) or 0)
            self.stats["tokens"] += req.tokens

    def _ensure_loaded(self, name: str) -> Any:
        if not name:
            raise ModelError(f"no model: put a .gguf file in {models.models_dir(self.data_dir)} and set [ai] model")
        path = models.resolve(self.data_dir, name)
        if path is None:
            raise ModelError(f"unknown model {name!r}")
        if self.llm is not None and self.loaded_path == path:
            return self.llm
        self._unload_now()
        info = models.inspect(path)
        n_ctx = self.settings.context_size
        if trained := info.arch_int("context_length"):
            n_ctx = min(n_ctx, trained)
        needed = models.needed_bytes(info, n_ctx, self.settings.batch_size)
        needed += (self.settings.min_free_mb + self.settings.state_cache_mb) * 2**20
        available = self.available_memory()
        if needed > available:
            raise models.NotEnoughMemory(path.name, needed, available)
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelError("llama-cpp-python is not installed (pip install 'gk[ai]')") from exc

        started = time.monotonic()
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=self.settings.batch_size,
                n_threads=self.settings.n_threads,
                n_threads_batch=self.settings.n_threads,
                use_mmap=True,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp could not load {path.name}: {exc}") from exc
        if self.settings.state_cache_mb:
            # a conversation's KV state is saved after each answer and restored when it comes back
            # after another one used the context (longest token prefix wins; LRU within the budget)
            from gk.ai import statecache  # llama-cpp-python's own cache keeps 155 MB of logits a state

            statecache.install(self.llm, self.settings.state_cache_mb * 2**20)
        cache_pieces(self.llm)
        evaluate = self.llm.eval

        def counted_eval(tokens: Any) -> None:  # what a turn really costs, for tests and status
            self._evaluated += len(tokens)
            evaluate(tokens)

        self.llm.eval = counted_eval
        self.loaded_path = path
        self.stats["loads"] += 1
        log.info(
            "ai: loaded %s (%.1f MiB, n_ctx %d) in %.2f s",
            path.name,
            info.size / 2**20,
            n_ctx,
            time.monotonic() - started,
        )
        return self.llm

    def _unload_now(self) -> None:
        if self.llm is None:
            return
        llm, self.llm, self.loaded_path = self.llm, None, None
        try:
            llm.close()
        except Exception:
            log.exception("ai: closing the model failed")
        del llm
        gc.collect()
        self.stats["unloads"] += 1
        _malloc_trim()


def cache_pieces(llm: Any) -> None:
    """Make ``llm``'s detokenizer look each token's text up once, instead of asking llama.cpp again
    for every token of the answer at every new token.

    llama-cpp-python's streamed completion detokenizes the whole answer so far after each
    sampled token (stop sequences, UTF-8 checks): a Python loop with a ctypes call per token,
    so token n costs n calls, each releasing and re-taking the GIL. Near the end of a
    1,000-token answer that is milliseconds per token of Python on the inference thread, and
    with a waiting hub every re-take makes the hub drop the GIL again after its switch interval:
    IMAP and SMTP wait behind it (``bench/llm``). A token's text (``llama_token_to_piece``) never
    changes for a loaded model, so one dict lookup per token gives the same bytes with the GIL
    held for microseconds. Same output as llama-cpp-python 0.3.x's ``LlamaModel.detokenize``,
    including its removal of the space after a leading BOS (``tests/unit/test_ai_runtime.py``).
    """
    model = getattr(llm, "_model", None)
    vocab = getattr(model, "vocab", None)
    if model is None or vocab is None:  # another llama-cpp-python layout: keep its own
        return
    import ctypes

    import llama_cpp

    bos = model.token_bos()
    pieces: tuple[dict[int, bytes], dict[int, bytes]] = ({}, {})  # special=False, special=True
    buffer = ctypes.create_string_buffer(64)

    def piece(token: int, special: bool) -> bytes:
        n = llama_cpp.llama_token_to_piece(vocab, llama_cpp.llama_token(token), buffer, len(buffer), 0, special)
        if n < 0:  # the piece is longer than the buffer: -n bytes
            big = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(vocab, llama_cpp.llama_token(token), big, len(big), 0, special)
            return big.raw[: max(0, n)]
        return buffer.raw[:n]

    def detokenize(tokens: list[int], special: bool = False) -> bytes:
        known = pieces[1 if special else 0]
        out = []
        for token in tokens:
            text = known.get(token)
            if text is None:
                text = known[token] = piece(token, special)
            out.append(text)
        output = b"".join(out)
        return output[1:] if tokens and tokens[0] == bos and output[:1] == b" " else output

    model.detokenize = detokenize


SCHEDULERS = {"batch": "SCHED_BATCH", "idle": "SCHED_IDLE"}


def lower_priority(nice: int, scheduler: str = "normal") -> None:
    """Give the calling thread (the inference thread) ``nice`` as its OS priority and, with
    ``scheduler`` ``batch`` or ``idle``, that Linux scheduling class, once.

    On Linux the nice value and the scheduling policy belong to a thread (``setpriority`` and
    ``sched_setscheduler`` with its native id), and the threads llama.cpp starts for ``n_threads``
    > 1 inherit them from the thread that creates them. Raised, never lowered: a process that is
    not root may only lower its priority, and the hub and the mail pools keep theirs, so when the
    CPU is short they are served first. ``SCHED_BATCH`` never preempts another thread when it
    wakes; ``SCHED_IDLE`` runs only when no other thread wants the core — on a box a generation
    then waits behind every mail and web request, and on a machine that other work keeps busy it
    may hardly run at all.
    """
    import threading

    tid = threading.get_native_id()
    if nice > 0 and hasattr(os, "setpriority"):
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:
            log.warning("ai: could not lower the inference thread's priority: %s", exc)
    policy = getattr(os, SCHEDULERS.get(scheduler, ""), None) if scheduler in SCHEDULERS else None
    if policy is not None and hasattr(os, "sched_setscheduler"):
        try:
            if os.sched_getscheduler(tid) != policy:
                os.sched_setscheduler(tid, policy, os.sched_param(0))
        except OSError as exc:
            log.warning("ai: could not set the inference thread's scheduling class: %s", exc)


def _malloc_trim() -> None:
    """Return the freed context and KV buffers to the kernel (glibc; no-op elsewhere)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
