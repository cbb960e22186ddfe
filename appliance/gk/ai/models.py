"""The GGUF files in ``DATA_DIR/models`` and what loading one costs.

``inspect`` reads a GGUF's header with ``struct`` (no numpy, no llama.cpp: a few ms even for a
150k-token vocabulary, strings are skipped by seeking) and checks that every tensor's data lies
inside the file, so a truncated or corrupt download is refused with a message before llama.cpp
maps it. ``needed_bytes`` estimates the resident memory of a load: the mapped weights (they are
all touched by the first token), the KV cache (f16 K and V for every layer and context slot)
and a fixed allowance for llama.cpp's compute buffers and the ``llama_cpp`` import itself.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

GGUF_MAGIC = b"GGUF"
# what llama.cpp and llama_cpp add besides weights and KV: compute buffers, the Python module
OVERHEAD_BYTES = 48 * 1024 * 1024
MAX_COUNT = 1 << 24  # more tensors/keys/array items than this is a corrupt header, not a model


class ModelError(Exception):
    """A model that cannot be used: missing, corrupt, truncated, or too large for the memory."""


class NotEnoughMemory(ModelError):
    def __init__(self, name: str, needed: int, available: int):
        self.needed, self.available = needed, available
        super().__init__(
            f"model {name} needs about {needed // 2**20} MiB of memory but only {available // 2**20} MiB "
            "is available: choose a smaller model or a smaller [ai] context_size"
        )


# ggml type id -> (elements per block, bytes per block); the types GGUF models ship in
_GGML_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    9: (32, 36),  # Q8_1
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    15: (256, 292),  # Q8_K
    16: (256, 66),  # IQ2_XXS
    17: (256, 74),  # IQ2_XS
    18: (256, 98),  # IQ3_XXS
    19: (256, 50),  # IQ1_S
    20: (32, 18),  # IQ4_NL
    21: (256, 110),  # IQ3_S
    22: (256, 82),  # IQ2_S
    23: (256, 136),  # IQ4_XS
    24: (1, 1),  # I8
    25: (1, 2),  # I16
    26: (1, 4),  # I32
    27: (1, 8),  # I64
    28: (1, 8),  # F64
    29: (256, 56),  # IQ1_M
    30: (1, 2),  # BF16
    34: (256, 54),  # TQ1_0
    35: (256, 66),  # TQ2_0
    39: (32, 17),  # MXFP4
}

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


@dataclass
class GGUFInfo:
    path: Path
    size: int
    version: int
    architecture: str
    metadata: dict[str, Any] = field(default_factory=dict)  # scalars and short strings only
    tensor_count: int = 0
    vocab_size: int = 0

    def arch_int(self, key: str, default: int = 0) -> int:
        v = self.metadata.get(f"{self.architecture}.{key}", default)
        return int(v) if isinstance(v, int | float) else default

    @property
    def chat_template(self) -> str:
        return str(self.metadata.get("tokenizer.chat_template", ""))


class _Reader:
    def __init__(self, f: BinaryIO, size: int, name: str):
        self.f, self.size, self.name = f, size, name

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise ModelError(f"{self.name}: the file ends inside its header (truncated download?)")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self, keep: bool = True) -> str:
        n = self.unpack("<Q")
        if n > self.size:
            raise ModelError(f"{self.name}: a header string is longer than the file (corrupt GGUF)")
        if not keep:
            self.f.seek(n, os.SEEK_CUR)
            return ""
        return self.read(n).decode("utf-8", "replace")

    def value(self, vtype: int, keep: bool) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == 8:
            return self.string(keep)
        if vtype == 9:
            itype, n = self.unpack("<I"), self.unpack("<Q")
            if n > MAX_COUNT:
                raise ModelError(f"{self.name}: an array in the header is impossibly long (corrupt GGUF)")
            if itype in _SCALARS:
                width = struct.calcsize(_SCALARS[itype])
                self.f.seek(width * n, os.SEEK_CUR)
            else:
                for _ in range(n):
                    self.value(itype, keep=False)
            return n  # arrays are skipped; their length is what callers use
        raise ModelError(f"{self.name}: unknown value type {vtype} in the header (corrupt GGUF)")


def inspect(path: Path) -> GGUFInfo:
    """Parse ``path``'s GGUF header and check its tensor data is all there. Raises ModelError."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            r = _Reader(f, size, path.name)
            if r.read(4) != GGUF_MAGIC:
                raise ModelError(f"{path.name} is not a GGUF file (bad magic)")
            version = r.unpack("<I")
            if version not in (2, 3):
                raise ModelError(f"{path.name}: unsupported GGUF version {version}")
            n_tensors, n_kv = r.unpack("<Q"), r.unpack("<Q")
            if n_tensors > MAX_COUNT or n_kv > MAX_COUNT:
                raise ModelError(f"{path.name}: impossible tensor or key count (corrupt GGUF)")
            meta: dict[str, Any] = {}
            for _ in range(n_kv):
                key = r.string()
                vtype = r.unpack("<I")
                meta[key] = r.value(vtype, keep=True)
            ends: list[int] = []
            for _ in range(n_tensors):
                name = r.string()
                n_dims = r.unpack("<I")
                if n_dims > 8:
                    raise ModelError(f"{path.name}: tensor {name} has {n_dims} dimensions (corrupt GGUF)")
                count = 1
                for _ in range(n_dims):
                    count *= r.unpack("<Q")
                ttype, offset = r.unpack("<I"), r.unpack("<Q")
                if ttype not in _GGML_SIZES:
                    raise ModelError(f"{path.name}: tensor {name} has an unknown type {ttype}")
                block, width = _GGML_SIZES[ttype]
                ends.append(offset + (count + block - 1) // block * width)
            align = int(meta.get("general.alignment", 32) or 32)
            data_start = (f.tell() + align - 1) // align * align
    except OSError as exc:
        raise ModelError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    except (struct.error, UnicodeError, ValueError, OverflowError) as exc:
        raise ModelError(f"{path.name}: corrupt GGUF header ({exc})") from exc
    if ends and data_start + max(ends) > size:
        raise ModelError(
            f"{path.name} is truncated: its tensors need {data_start + max(ends)} bytes, the file has {size}"
        )
    arch = str(meta.get("general.architecture", ""))
    if not arch:
        raise ModelError(f"{path.name}: no general.architecture in the header")
    vocab = meta.get("tokenizer.ggml.tokens", 0)
    return GGUFInfo(path, size, version, arch, meta, n_tensors, int(vocab) if isinstance(vocab, int) else 0)


def kv_cache_bytes(info: GGUFInfo, n_ctx: int) -> int:
    """f16 K and V for every layer and context slot (llama.cpp's default cache type)."""
    n_layer = info.arch_int("block_count")
    n_embd = info.arch_int("embedding_length")
    n_head = max(1, info.arch_int("attention.head_count", 1))
    n_head_kv = info.arch_int("attention.head_count_kv", n_head) or n_head
    k_len = info.arch_int("attention.key_length", n_embd // n_head)
    v_len = info.arch_int("attention.value_length", n_embd // n_head)
    return n_ctx * n_layer * n_head_kv * (k_len + v_len) * 2


def needed_bytes(info: GGUFInfo, n_ctx: int, n_batch: int) -> int:
    """Resident memory a load will take: weights, KV cache, the attention scores of one prompt
    batch (f32, no flash attention), two rows of logits, and a fixed overhead. (llama-cpp-python
    also reserves n_batch rows of logits, but only touches them with ``logits_all``.)"""
    n_head = max(1, info.arch_int("attention.head_count", 1))
    scores = n_ctx * n_batch * n_head * 4 + info.vocab_size * 4 * 2
    return info.size + kv_cache_bytes(info, n_ctx) + scores + OVERHEAD_BYTES


def available_bytes() -> int:
    """``MemAvailable`` from /proc/meminfo (what the kernel can hand out without swapping)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "models"


def list_models(data_dir: Path) -> list[Path]:
    d = models_dir(data_dir)
    try:
        return sorted(p for p in d.iterdir() if p.suffix == ".gguf" and p.is_file())
    except OSError:
        return []


def resolve(data_dir: Path, name: str) -> Path | None:
    """The file of model ``name`` (a file name in ``DATA_DIR/models``, ``.gguf`` optional)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    for candidate in (name, name + ".gguf"):
        p = models_dir(data_dir) / candidate
        if p.suffix == ".gguf" and p.is_file():
            return p
    return None


def in_use(data_dir: Path, configured: str = "", catalogue_path: str = "") -> str:
    """The file name of the model the assistant uses ('' = none installed): the one chosen with
    ``gk ai use`` or the wizard (``settings`` ``ai_model``: a catalogue id or a file name), else
    ``[ai] model``, else the first GGUF in ``DATA_DIR/models``."""
    from gk import settings
    from gk.ai import catalogue

    choice = settings.of(data_dir).ai_model()
    for name in (choice, configured):
        if not name or name == "none":
            continue
        path = resolve(data_dir, name)
        if path is None:
            try:
                entry = catalogue.find(catalogue.cached(catalogue_path), name)
            except catalogue.CatalogueError:
                entry = None
            path = resolve(data_dir, entry.file) if entry else None
        if path is not None:
            return path.name
    found = list_models(data_dir)
    return found[0].name if found else ""
