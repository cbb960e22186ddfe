"""LLM speed: GK's runtime against bare llama-cpp-python, same GGUF, same settings, same run.

The model is random weights written by ``tests/support/tinygguf.py`` in a bigger shape (f16,
``SHAPE`` below; nothing is downloaded), so the numbers are llama.cpp's real work per token.
Measured, for bare ``llama_cpp.Llama.create_chat_completion`` called directly and for GK's
``Runtime`` (its inference thread, the hub wake-up per token, the queue):

- prompt tokens/s (a ~``SPEED_PROMPT_TOKENS`` prompt, first token time) and generation
  tokens/s, the two alternated ``ROUNDS`` times, best of each kept (the machine is shared);
- turn 2 of a conversation: time to first token against turn 1 (the prefix of turn 1 is
  already in the context, so only the new tokens are evaluated), a ~``PROMPT_TOKENS`` turn 1.

Targets (issue 14): GK >= 0.95x bare speed; turn-2 TTFT <= 0.2x turn 1.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

SHAPE = {"n_embd": 512, "n_layer": 8, "n_ff": 1536, "n_head": 8, "n_ctx": 4096, "f16": True}
PROMPT_TOKENS = 1500  # the conversation of the turn-2 measurement
SPEED_PROMPT_TOKENS = 400  # the prompt of the speed comparison
ROUNDS = 5
GEN_TOKENS = 200
N_CTX = 4096


def _messages(tokens: int) -> list[dict[str, str]]:
    # the test tokenizer has no merges between single characters: about one token a character
    text = ("bonjour the mail box hello value " * (tokens // 30 + 1))[:tokens]
    return [{"role": "system", "content": "Tu es l'assistant."}, {"role": "user", "content": text}]


def _timed(stream) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """(time to first token, total, chunks) of a stream of chat chunks."""
    start = time.perf_counter()
    first, n = 0.0, 0
    for chunk in stream:
        if chunk["choices"][0]["delta"].get("content"):
            n += 1
            if not first:
                first = time.perf_counter() - start
    return first, time.perf_counter() - start, n


def main() -> int:
    try:
        import llama_cpp
    except ImportError:
        print("llama-cpp-python is not installed (make setup installs the `ai` extra)")
        return 1
    import gevent

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support import tinygguf

    from gk.ai.runtime import Runtime, RuntimeSettings

    threads = max(1, (os.cpu_count() or 2) - 1)
    params = {"max_tokens": GEN_TOKENS, "temperature": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        (data_dir / "models").mkdir()
        model = tinygguf.write(data_dir / "models" / "bench.gguf", **SHAPE)
        print(f"model: random llama {SHAPE}, {model.stat().st_size / 2**20:.0f} MiB; {threads} thread(s)")
        long = _messages(PROMPT_TOKENS)
        short = _messages(12)

        bare = llama_cpp.Llama(str(model), n_ctx=N_CTX, n_batch=256, n_threads=threads, n_threads_batch=threads,
                               verbose=False)  # fmt: skip
        rt = Runtime(data_dir, RuntimeSettings(context_size=N_CTX, batch_size=256, threads=threads, min_free_mb=0))
        bare.create_chat_completion(messages=short, max_tokens=4)  # warm up both
        rt.submit("bench.gguf", {"messages": short, "max_tokens": 4}, stream=False).result()
        speed = _messages(SPEED_PROMPT_TOKENS)
        b_ttft = g_ttft = b_total = g_total = float("inf")
        b_n = g_n = n_prompt = 0
        # the machine is shared: alternate the two, ROUNDS times, and keep each one's best
        for _ in range(ROUNDS):
            bare.reset()
            ttft, _, _ = _timed(bare.create_chat_completion(messages=speed, stream=True, max_tokens=1))
            b_ttft, n_prompt = min(b_ttft, ttft), bare.n_tokens
            rt.llm.reset()
            g_ttft = min(
                g_ttft, _timed(rt.submit("bench.gguf", {"messages": speed, "max_tokens": 1}, stream=True).chunks())[0]
            )
            bare.reset()
            _, total, b_n = _timed(bare.create_chat_completion(messages=short, stream=True, **params))
            b_total = min(b_total, total)
            rt.llm.reset()
            _, total, g_n = _timed(rt.submit("bench.gguf", {"messages": short, **params}, stream=True).chunks())
            g_total = min(g_total, total)
        bare.close()

        # turn 2 of a long conversation: only its new tokens are read
        rt.llm.reset()
        t1_ttft, _, _ = _timed(rt.submit("bench.gguf", {"messages": long, "max_tokens": 8}, stream=True).chunks())
        turn2 = [*long, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "and then?"}]
        t2_ttft, _, _ = _timed(rt.submit("bench.gguf", {"messages": turn2, "max_tokens": 8}, stream=True).chunks())
        rt.stop()
        gevent.sleep(0)

    b_gen, g_gen = b_n / b_total, g_n / g_total
    print(f"prompt ({n_prompt} tok): bare {n_prompt / b_ttft:8.1f} tok/s   GK {n_prompt / g_ttft:8.1f} tok/s   "
          f"ratio {b_ttft / g_ttft:.2f}x (target >= 0.95)")  # fmt: skip
    print(f"generation:         bare {b_gen:8.1f} tok/s   GK {g_gen:8.1f} tok/s   "
          f"ratio {g_gen / b_gen:.2f}x (target >= 0.95)")  # fmt: skip
    print(f"conversation TTFT:  turn 1 {t1_ttft * 1000:.0f} ms, turn 2 {t2_ttft * 1000:.0f} ms   "
          f"ratio {t2_ttft / t1_ttft:.2f}x (target <= 0.2)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
