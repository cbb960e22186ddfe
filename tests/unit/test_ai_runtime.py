"""The inference runtime against llama.cpp itself, on the tiny random-weight GGUF (no download).

Real llama.cpp, a real native inference thread and the gevent hub of this process: outputs are
gibberish but load, sampling at a seed, streaming, cancellation, queueing and memory refusal
are the production code paths.
"""

from __future__ import annotations

import shutil
import time

import gevent
import pytest

pytest.importorskip("llama_cpp", reason="the `ai` extra is not installed (make setup installs it)")

from gk.ai import models
from gk.ai.runtime import ContextOverflow, Runtime, RuntimeSettings

PROMPT = [{"role": "user", "content": "hello box, write me something long"}]
# no end of turn and no lone UTF-8 bytes: a long generation runs to max_tokens, one chunk a token
LONG = {i: -100.0 for i in [0, 1, 2, 3, 4, *range(5 + 0x80, 5 + 0x100)]}


@pytest.fixture
def data_dir(tmp_path, tiny_gguf):
    (tmp_path / "models").mkdir()
    shutil.copy(tiny_gguf, tmp_path / "models" / "tiny.gguf")
    return tmp_path


@pytest.fixture
def make_runtime(data_dir):
    made: list[Runtime] = []

    def factory(**kw) -> Runtime:
        available = kw.pop("available_memory", models.available_bytes)
        settings = RuntimeSettings(**{"context_size": 1024, "threads": 1, "min_free_mb": 0, **kw})
        rt = Runtime(data_dir, settings, available_memory=available)
        made.append(rt)
        return rt

    yield factory
    for rt in made:
        rt.stop()


def text_of(req) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in req.chunks(timeout=120))


def test_same_seed_same_answer_streamed_or_not(make_runtime):
    rt = make_runtime()
    params = {"messages": PROMPT, "max_tokens": 24, "temperature": 0.9, "seed": 42}
    a = rt.submit("tiny.gguf", params, stream=False).result(timeout=120)
    b = rt.submit("tiny.gguf", params, stream=False).result(timeout=120)
    streamed = text_of(rt.submit("tiny.gguf", params, stream=True))
    first = a["choices"][0]["message"]["content"]
    assert first and first == b["choices"][0]["message"]["content"] == streamed
    assert a["usage"]["completion_tokens"] > 0
    other = rt.submit("tiny.gguf", dict(params, seed=7), stream=False).result(timeout=120)
    assert other["choices"][0]["message"]["content"] != first  # the seed is what makes it repeat
    assert rt.status()["loads"] == 1  # loaded once, on first use


def test_cancel_stops_within_a_token_or_two(make_runtime):
    rt = make_runtime()
    req = rt.submit(
        "tiny.gguf",
        {"messages": PROMPT, "max_tokens": 800, "temperature": 1.0, "seed": 1, "logit_bias": LONG},
        stream=True,
    )
    chunks = req.chunks(timeout=120)
    for _ in range(3):
        next(chunks)
    req.cancel()
    list(chunks)  # the stream ends (chunks already on their way are delivered): no error
    # sampled after the cancel: a token or two. Counted from the cancel itself, not from a read
    # of the count before it: on a busy machine the inference thread can take the GIL between
    # the two and sample a few more tokens before the cancel exists.
    assert req.tokens - req.tokens_at_cancel <= 2, (req.tokens_at_cancel, req.tokens)
    deadline = time.monotonic() + 60  # the dispatcher lets go of it once the thread returns
    while rt.position(req) != -1 and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert rt.position(req) == -1
    # not streamed: the answer ends early, with what was generated so far
    req = rt.submit("tiny.gguf", {"messages": PROMPT, "max_tokens": 800, "seed": 1, "logit_bias": LONG}, stream=False)
    while req.tokens < 5:
        gevent.sleep(0.01)
    req.cancel()
    out = req.result(timeout=120)
    assert out["usage"]["completion_tokens"] < 800 and out["choices"][0]["finish_reason"] == "stop"
    # the thread is free again: the next request is served
    assert rt.submit("tiny.gguf", {"messages": PROMPT, "max_tokens": 4}, stream=False).result(timeout=120)


def test_two_requests_are_served_in_order(make_runtime):
    rt = make_runtime()
    params = {"messages": PROMPT, "max_tokens": 40, "temperature": 1.0, "seed": 3, "logit_bias": LONG}
    first = rt.submit("tiny.gguf", params, stream=True)
    second = rt.submit("tiny.gguf", params, stream=True)
    assert (rt.position(first), rt.position(second)) == (1, 2)
    done: list[tuple[str, float]] = []

    def consume(name, req):
        for _ in req.chunks(timeout=120):
            pass
        done.append((name, time.monotonic()))

    gevent.joinall([gevent.spawn(consume, "second", second), gevent.spawn(consume, "first", first)], raise_error=True)
    assert [n for n, _ in done] == ["first", "second"]
    # the second waited, first in line, until the inference thread let go of the first (its
    # own timestamps: how far the consumers had read says nothing on a busy machine, where
    # the thread may finish the first before its consumer reads a chunk)
    assert 0 < first.started < first.finished <= second.started


def test_the_hub_keeps_running_during_a_generation(make_runtime):
    rt = make_runtime()
    rt.submit("tiny.gguf", {"messages": PROMPT, "max_tokens": 1}, stream=False).result(timeout=120)  # load first
    ticks = 0
    stalls: list[float] = []

    def ticker():
        nonlocal ticks
        while True:
            t = time.monotonic()
            gevent.sleep(0.001)
            stalls.append(time.monotonic() - t)
            ticks += 1

    g = gevent.spawn(ticker)
    gevent.sleep(0)
    req = rt.submit(
        "tiny.gguf",
        {"messages": PROMPT, "max_tokens": 300, "temperature": 1.0, "seed": 5, "logit_bias": LONG},
        stream=True,
    )
    ticks_at: list[int] = []
    for _ in req.chunks(timeout=120):
        ticks_at.append(ticks)
    g.kill()
    # other greenlets ran all along, between tokens, not only before and after the generation
    assert len(ticks_at) > 50
    assert ticks_at[-1] - ticks_at[0] >= 20, ticks_at[::20]
    print(f"{len(ticks_at)} chunks, {ticks_at[-1] - ticks_at[0]} hub ticks between first and last, "
          f"longest hub stall {max(stalls) * 1000:.1f} ms")  # fmt: skip


def test_load_refused_when_memory_is_short(make_runtime):
    rt = make_runtime(available_memory=lambda: 20 * 2**20)
    req = rt.submit("tiny.gguf", {"messages": PROMPT, "max_tokens": 4}, stream=False)
    with pytest.raises(models.NotEnoughMemory) as err:
        req.result(timeout=120)
    assert err.value.available == 20 * 2**20 and err.value.needed > err.value.available
    assert "needs about" in str(err.value) and "only 20 MiB" in str(err.value)
    assert rt.status()["loaded"] is False


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_gguf_is_refused_with_a_message(make_runtime, data_dir, damage):
    good = (data_dir / "models" / "tiny.gguf").read_bytes()
    bad = {"truncated": good[: len(good) * 2 // 3], "garbage": b"<html>not found</html>" * 50, "empty": b""}[damage]
    (data_dir / "models" / "bad.gguf").write_bytes(bad)
    rt = make_runtime()
    with pytest.raises(models.ModelError, match="bad.gguf") as err:
        rt.submit("bad.gguf", {"messages": PROMPT, "max_tokens": 4}, stream=False).result(timeout=120)
    assert {"truncated": "truncated", "garbage": "not a GGUF", "empty": "truncated"}[damage] in str(err.value)
    # the runtime is still fine: the good model answers
    assert rt.submit("tiny.gguf", {"messages": PROMPT, "max_tokens": 4}, stream=False).result(timeout=120)


def test_prompt_over_the_context_is_a_clear_error(make_runtime):
    rt = make_runtime(context_size=256)
    long = [{"role": "user", "content": "bonjour " * 600}]
    with pytest.raises(ContextOverflow, match="context window"):
        rt.submit("tiny.gguf", {"messages": long, "max_tokens": 4}, stream=False).result(timeout=120)


def test_unloads_after_idle_time(make_runtime):
    rt = make_runtime(idle_unload_seconds=1)
    rt.submit("tiny.gguf", {"messages": PROMPT, "max_tokens": 2}, stream=False).result(timeout=120)
    deadline = time.monotonic() + 60
    while rt.status()["unloads"] < 1 and time.monotonic() < deadline:
        gevent.sleep(0.2)
    assert rt.status()["unloads"] == 1 and not rt.status()["loaded"]
    # and loads again on the next use
    rt.submit("tiny.gguf", {"messages": PROMPT, "max_tokens": 2}, stream=False).result(timeout=120)
    assert rt.status()["loads"] == 2


def test_second_turn_evaluates_only_its_new_tokens(make_runtime):
    rt = make_runtime()
    turn1 = [{"role": "user", "content": "bonjour the mail box " * 20}]
    first = rt.submit("tiny.gguf", {"messages": turn1, "max_tokens": 6, "seed": 9}, stream=False)
    reply = first.result(timeout=120)["choices"][0]["message"]["content"]
    turn2 = [*turn1, {"role": "assistant", "content": reply}, {"role": "user", "content": "and then?"}]
    second = rt.submit("tiny.gguf", {"messages": turn2, "max_tokens": 6, "seed": 9}, stream=False)
    second.result(timeout=120)
    assert first.evaluated > 200
    # the reply (re-tokenized), the end of turn markers and "and then?": a few dozen tokens at most
    assert second.evaluated < 60, (first.evaluated, second.evaluated)


def test_a_conversation_resumed_after_another_reuses_its_saved_state(make_runtime):
    greedy = {"max_tokens": 6, "temperature": 0.0}
    a1 = [{"role": "user", "content": "bonjour the mail box " * 20}]
    b1 = [{"role": "user", "content": "hello value name " * 20}]

    def a2(reply: dict) -> list[dict]:
        return [*a1, {"role": "assistant", "content": reply["choices"][0]["message"]["content"]},
                {"role": "user", "content": "and then?"}]  # fmt: skip

    rt = make_runtime(state_cache_mb=16)
    reply = rt.submit("tiny.gguf", {"messages": a1, **greedy}, stream=False).result(timeout=120)
    rt.submit("tiny.gguf", {"messages": b1, **greedy}, stream=False).result(timeout=120)
    second = rt.submit("tiny.gguf", {"messages": a2(reply), **greedy}, stream=False)
    resumed = second.result(timeout=120)["choices"][0]["message"]["content"]
    assert second.evaluated < 60, second.evaluated  # A's state came back: B did not cost A its history
    # a saved state keeps one row of logits, not llama-cpp-python's n_batch rows of the whole
    # vocabulary (155 MB for a Qwen model), and the budget counts all that the states keep
    cache = rt.llm.cache
    assert len(cache.cache_state) >= 2 and all(s.scores.shape[0] == 1 for s in cache.cache_state.values())
    assert 0 < cache.cache_size <= 16 * 2**20
    # and the restored state answers what the same conversation answers when nothing came between
    alone = make_runtime()
    reply = alone.submit("tiny.gguf", {"messages": a1, **greedy}, stream=False).result(timeout=120)
    direct = alone.submit("tiny.gguf", {"messages": a2(reply), **greedy}, stream=False).result(timeout=120)
    assert direct["choices"][0]["message"]["content"] == resumed


def _on_its_own_hub(data_dir, settings: RuntimeSettings, probe) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """One generation by a runtime on a hub of its own (a thread), so its pools, whose inference
    thread keeps its OS priority and class for good, are not the ones the other tests use; then
    ``probe`` (a thread's native id -> a number) of the inference thread and of that hub."""
    import threading

    seen: dict[str, int] = {}
    errors: list[BaseException] = []

    def run() -> None:
        rt = Runtime(data_dir, settings)
        try:
            rt.submit("tiny.gguf", {"messages": PROMPT, "max_tokens": 2}, stream=False).result(timeout=120)
            seen["inference"] = rt.pool.apply(lambda: probe(threading.get_native_id()))
            seen["hub"] = probe(threading.get_native_id())
        except BaseException as exc:
            errors.append(exc)
        finally:
            rt.stop()
            from gk import pools

            pools.shutdown()

    t = threading.Thread(target=run)
    t.start()
    t.join(300)
    assert not errors, errors
    return seen


def test_the_inference_thread_runs_at_the_configured_nice(data_dir):
    """[ai] nice lowers the inference thread's OS priority, and only that thread's: the hub (this
    thread) keeps its own."""
    import os
    import threading

    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    settings = RuntimeSettings(context_size=1024, threads=1, min_free_mb=0, nice=own + 3)
    seen = _on_its_own_hub(data_dir, settings, lambda tid: os.getpriority(os.PRIO_PROCESS, tid))
    assert seen == {"inference": min(19, own + 3), "hub": own}


def test_cached_pieces_detokenize_as_llama_cpp_python_does(tiny_gguf):
    """The runtime's detokenizer (one llama.cpp call per distinct token, then a dict) gives the
    bytes of llama-cpp-python's own, for every token, for runs of them, with and without
    special tokens and with the leading BOS whose following space is dropped."""
    import llama_cpp

    from gk.ai.runtime import cache_pieces

    llm = llama_cpp.Llama(str(tiny_gguf), n_ctx=64, verbose=False)
    try:
        own = llm._model.detokenize
        n = llm.n_vocab()
        every = list(range(n))
        text = llm.tokenize(" hello box, écrit-moi quelque chose".encode(), add_bos=True)
        runs = [every, [t for t in every if t != llm.token_bos()], text, text[1:], [llm.token_bos()], []]
        expected = [(own(r, special=False), own(r, special=True)) for r in runs]
        cache_pieces(llm)
        assert llm._model.detokenize is not own
        for _ in range(2):  # filled on the first pass, read on the second
            assert [
                (llm._model.detokenize(r, special=False), llm._model.detokenize(r, special=True)) for r in runs
            ] == expected
        assert llm.detokenize(text) == expected[2][0]
    finally:
        llm.close()


def test_the_inference_thread_runs_in_the_configured_scheduling_class(data_dir):
    """[ai] scheduler = batch puts the inference thread (and only it) in SCHED_BATCH; the hub keeps
    its class."""
    import os

    settings = RuntimeSettings(context_size=1024, threads=1, min_free_mb=0, scheduler="batch")
    seen = _on_its_own_hub(data_dir, settings, os.sched_getscheduler)
    assert seen == {"inference": os.SCHED_BATCH, "hub": os.SCHED_OTHER}
