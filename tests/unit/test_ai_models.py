"""GGUF header checks and the memory estimate (no llama.cpp involved: a struct parser)."""

from __future__ import annotations

import shutil

import pytest

from gk.ai import models


def test_the_tiny_model_is_inspected(tiny_gguf):
    info = models.inspect(tiny_gguf)
    assert info.architecture == "llama" and info.version == 3
    assert info.vocab_size > 256 + 95 and info.tensor_count == 2 + 2 * 9 + 1
    assert "<|im_start|>" in info.chat_template
    assert info.arch_int("block_count") == 2 and info.arch_int("context_length") == 2048
    assert info.size < 1024 * 1024


def test_truncated_and_garbage_files_are_refused(tmp_path, tiny_gguf):
    data = tiny_gguf.read_bytes()
    cases = {
        "half.gguf": (data[: len(data) // 2], "truncated"),
        "header.gguf": (data[:200], "ends inside its header"),
        "html.gguf": (b"<html>" * 100, "not a GGUF"),
        "empty.gguf": (b"", "ends inside its header"),
        "huge-count.gguf": (data[:8] + (2**40).to_bytes(8, "little") + data[16:], "impossible"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(models.ModelError, match=message):
            models.inspect(tmp_path / name)


def test_memory_estimate_grows_with_the_context(tiny_gguf):
    info = models.inspect(tiny_gguf)
    small, big = models.needed_bytes(info, 512, 256), models.needed_bytes(info, 2048, 256)
    # f16 K and V: 2 layers x 64 wide x 2 bytes x 2 (K, V) per context slot
    assert models.kv_cache_bytes(info, 2048) - models.kv_cache_bytes(info, 512) == 1536 * 2 * 64 * 2 * 2
    assert info.size < small < big
    assert models.available_bytes() > 0


def test_models_are_files_of_the_models_directory(tmp_path, tiny_gguf):
    (tmp_path / "models").mkdir()
    shutil.copy(tiny_gguf, tmp_path / "models" / "b.gguf")
    shutil.copy(tiny_gguf, tmp_path / "models" / "a.gguf")
    (tmp_path / "models" / "notes.txt").write_text("x")
    assert [p.name for p in models.list_models(tmp_path)] == ["a.gguf", "b.gguf"]
    assert models.resolve(tmp_path, "a") == tmp_path / "models" / "a.gguf"
    for bad in ("../models/a.gguf", "/etc/passwd", ".hidden", "", "notes.txt", "c.gguf"):
        assert models.resolve(tmp_path, bad) is None
