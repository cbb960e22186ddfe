"""A tiny random-weight GGUF model the tests write themselves (DESIGN.md, "Testing without the internet").

A llama-architecture model (2 layers, 64-wide, ~400-token vocabulary) with a tokenizer written
from scratch: ``tokenizer.ggml.model = "llama"`` (SentencePiece-style, byte fallback) holding
``<unk> <s> </s>``, the ChatML control tokens ``<|im_start|> <|im_end|>``, the 256 byte tokens
``<0xNN>``, every printable ASCII character and a few word pieces, each with a score and a token
type, plus a ChatML ``chat_template``. The output is gibberish, but loading, tokenizing, the chat
template, streaming, sampling at a seed and grammar/JSON-schema constraints are llama.cpp's real
code paths. The file is deterministic (fixed seed) and about 0.6 MB. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

WORDS = ["the", "and", "mail", "hello", "bonjour", "box", "true", "false", "null", "name", "value"]

# token types of llama.cpp's vocab (gguf.TokenType)
NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens: list[str] = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types: list[int] = [UNKNOWN, CONTROL, CONTROL, CONTROL, CONTROL]
    scores: list[float] = [0.0] * len(tokens)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(BYTE)
        scores.append(0.0)
    # single characters: space is SentencePiece's U+2581
    for c in range(0x20, 0x7F):
        tokens.append("\u2581" if c == 0x20 else chr(c))
        types.append(NORMAL)
        scores.append(-100.0)
    for i, word in enumerate(WORDS):
        for piece in (word, "\u2581" + word):
            tokens.append(piece)
            types.append(NORMAL)
            scores.append(-10.0 - i)  # a longer piece scores higher than its characters
    return tokens, scores, types


def write(path: Path, *, seed: int = 1234, n_embd: int = 64, n_layer: int = 2, n_ff: int = 128,
          n_head: int = 4, n_ctx: int = 2048, f16: bool = False, chat_template: str = CHATML_TEMPLATE) -> Path:  # fmt: skip
    """Write the model to ``path`` (deterministic for a given seed) and return the path.

    The defaults make the tests' 0.5 MB model; ``bench/llm.py`` asks for a bigger shape in f16;
    the tool-call tests give templates of other families (``chat_template``)."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.2).astype(np.float16 if f16 else np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    tmp = path.with_name(path.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name("gk-tiny-test")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(4)  # <|im_end|>, as ChatML models do
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)
    w.add_chat_template(chat_template)

    # numpy shapes are ggml's ne reversed: a weight of ne [n_in, n_out] is an (n_out, n_in) array
    w.add_tensor("token_embd.weight", mat(n_vocab, n_embd))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", ones(n_embd))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name}.weight", mat(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", ones(n_embd))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", mat(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", mat(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", mat(n_embd, n_ff))
    w.add_tensor("output_norm.weight", ones(n_embd))
    # the output rows of the control and byte tokens are zero and those of the pieces larger, so
    # the text sampled is mostly printable pieces (few lone UTF-8 bytes, end of turn is rare)
    out = mat(n_vocab, n_embd) * np.float32(1.5)
    out[[i for i, t in enumerate(types) if t != NORMAL]] = 0
    w.add_tensor("output.weight", out)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(path)
    return path
