"""``gk tune``: a hardware profile from RAM, cores and storage, applied at every boot.

The profile sets what a 512 MB board and an 8 GB mini-PC must do differently: zram size,
SQLite page cache, connection limits, argon2 cost, the largest local AI model and its threads,
and the service's MemoryHigh/MemoryMax. ``apply`` writes ``DATA_DIR/tune.json`` (read by
features that want a value without a config key), the tuned ``gk.toml`` keys (only keys the
owner has not set himself: a tuned line ends in ``# gk tune``), zram-generator's config, and,
with ``systemd=True``, gk.service's memory limits as runtime properties.

Cost: reads a few /proc and /sys files; no resident process. The table is docs/tuning.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gk import config as gkconfig

TUNED_MARK = "# gk tune"


@dataclass(frozen=True)
class Hardware:
    ram_mb: int
    cores: int
    storage: str  # "sd" (mmc), "usb", "nvme", "ssd", "hdd", "unknown"
    storage_free_mb: int


@dataclass(frozen=True)
class Profile:
    tier: str
    zram_mb: int
    sqlite_cache_kib: int
    smtp_max_connections: int
    imap_max_connections: int
    argon2_memory_kib: int
    argon2_time_cost: int
    llm_model: str  # "" = assistant off
    llm_model_mb: int
    llm_threads: int
    memory_high_mb: int
    memory_max_mb: int
    io_threads: int = 4  # gk/pools.py: the disk-I/O pool
    cpu_threads: int = 1  # gk/pools.py: the CPU pool (argon2 further bounded by memory)

    def config_keys(self) -> dict[str, int]:
        """The gk.toml keys this profile sets (section.key -> value)."""
        return {
            "server.sqlite_cache_kib": self.sqlite_cache_kib,
            "smtp.max_connections": self.smtp_max_connections,
            "imap.max_connections": self.imap_max_connections,
            "auth.argon2_memory_kib": self.argon2_memory_kib,
            "auth.argon2_time_cost": self.argon2_time_cost,
        }


# (tier, max RAM MB, zram MB, sqlite KiB, smtp conns, imap conns, argon2 KiB, argon2 t,
#  model, model MB, MemoryHigh MB, MemoryMax MB). MemoryHigh leaves the kernel, journald, avahi
#  and the page cache of the Maildirs room; a model is mmapped and counts against the limit.
TIERS: list[tuple[str, int, int, int, int, int, int, int, str, int, int, int]] = [
    ("512M", 700, 256, 2048, 20, 50, 19456, 2, "", 0, 200, 280),
    ("1G", 1400, 512, 4096, 50, 100, 19456, 2, "qwen2.5-0.5b-instruct-q4_k_m", 400, 600, 760),
    ("2G", 2800, 1024, 8192, 100, 200, 47104, 2, "qwen2.5-1.5b-instruct-q4_k_m", 1100, 1400, 1700),
    ("4G", 5600, 2048, 16384, 200, 500, 65536, 3, "qwen2.5-3b-instruct-q4_k_m", 2000, 2900, 3400),
    ("8G", 1 << 30, 4096, 32768, 200, 500, 65536, 3, "qwen2.5-7b-instruct-q4_k_m", 4700, 6200, 7000),
]


def meminfo_mb(meminfo: Path = Path("/proc/meminfo")) -> dict[str, int]:
    """Every ``/proc/meminfo`` field in MiB ({} where the system has no such file)."""
    info: dict[str, int] = {}
    try:
        for line in meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            with contextlib.suppress(ValueError, IndexError):
                info[key] = int(rest.split()[0]) // 1024
    except OSError:
        pass
    return info


def read_ram_mb(meminfo: Path = Path("/proc/meminfo")) -> int:
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ValueError(f"{meminfo}: no MemTotal line")


def storage_kind(path: Path = Path("/"), sys_block: Path = Path("/sys/class/block")) -> str:
    """What the file system under ``path`` lives on, from sysfs (mmc = SD card / eMMC)."""
    try:
        st = os.stat(path)
        dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        node = (Path("/sys/dev/block") / dev).resolve()
    except OSError:
        return "unknown"
    disk = node.parent if (node / "partition").exists() else node
    name = disk.name
    if name.startswith("mmcblk"):
        return "sd"
    if name.startswith("nvme"):
        return "nvme"
    if "/usb" in str(disk):
        return "usb"
    rot = disk / "queue" / "rotational"
    if rot.exists():
        return "hdd" if rot.read_text().strip() == "1" else "ssd"
    return "unknown"


def measure(data_dir: Path) -> Hardware:
    probe = data_dir if data_dir.exists() else Path("/")
    free_mb = shutil.disk_usage(probe).free // (1024 * 1024)
    return Hardware(read_ram_mb(), os.cpu_count() or 1, storage_kind(probe), free_mb)


def profile_for(hw: Hardware) -> Profile:
    tier = next(t for t in TIERS if hw.ram_mb <= t[1])
    name, _, zram, cache, smtp, imap, a_mem, a_t, model, model_mb, high, mx = tier
    # A model needs its file on disk with 1 GB to spare; otherwise take the largest that fits.
    if model and hw.storage_free_mb < model_mb + 1024:
        fitting = [t for t in TIERS if t[8] and hw.storage_free_mb >= t[9] + 1024 and t[9] <= model_mb]
        model, model_mb = (fitting[-1][8], fitting[-1][9]) if fitting else ("", 0)
    # An SD card is slow at random writes: fewer concurrent sessions queue less I/O.
    if hw.storage == "sd":
        smtp, imap = max(10, smtp // 2), max(25, imap // 2)
    zram = min(zram, hw.ram_mb // 2)  # zram beyond half the RAM thrashes on a small board
    threads = 0 if not model else max(1, min(hw.cores - 1 if hw.cores > 2 else hw.cores, 8))
    io, cpu = pool_sizes(hw)
    return Profile(name, zram, cache, smtp, imap, a_mem, a_t, model, model_mb, threads, high, mx, io, cpu)


def pool_sizes(hw: Hardware) -> tuple[int, int]:
    """(disk-I/O threads, CPU threads) for ``gk.pools``.

    CPU: one thread per core — more only adds GIL contention. Disk I/O: a thread waiting on an
    fsync holds no core, so twice the cores (4 to 8) keep concurrent deliveries' commits from
    queueing behind one another; an SD card or USB stick serialises random writes itself: 4.
    """
    cores = max(1, hw.cores)
    io = 4 if hw.storage in ("sd", "usb") else max(4, min(8, 2 * cores))
    return io, cores


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        st = path.stat()
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, path)


def tune_config_text(text: str, keys: dict[str, int]) -> str:
    """Set ``keys`` in gk.toml text: a commented default or an earlier tuned line is replaced,
    a key the owner set himself (an uncommented line without the mark) is left alone."""
    lines = text.splitlines()
    section = ""
    done: set[str] = set()
    owner_set: set[str] = set()
    for i, line in enumerate(lines):
        m = re.match(r"\s*\[([A-Za-z0-9_]+)\]\s*$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"\s*(#\s*)?([A-Za-z0-9_]+)\s*=", line)
        if not m:
            continue
        dotted = f"{section}.{m.group(2)}"
        if dotted not in keys or dotted in done:
            continue
        if m.group(1) is None and TUNED_MARK not in line:
            owner_set.add(dotted)
            continue
        if m.group(1) is not None and dotted in owner_set:
            continue
        lines[i] = f"{m.group(2)} = {keys[dotted]}  {TUNED_MARK}"
        done.add(dotted)
    missing: dict[str, list[str]] = {}
    for dotted in keys:
        if dotted in done or dotted in owner_set:
            continue
        sec, key = dotted.split(".", 1)
        missing.setdefault(sec, []).append(f"{key} = {keys[dotted]}  {TUNED_MARK}")
    for sec, new_lines in missing.items():
        # into the existing table (TOML forbids declaring a table twice), else a new one at the end
        header = next((i for i, ln in enumerate(lines) if re.match(rf"\s*\[{sec}\]\s*$", ln)), None)
        if header is None:
            lines += ["", f"[{sec}]", *new_lines]
            continue
        end = header + 1
        while end < len(lines) and not re.match(r"\s*\[", lines[end]):
            end += 1
        while end > header + 1 and not lines[end - 1].strip():
            end -= 1
        lines[end:end] = new_lines
    return "\n".join(lines) + "\n"


def apply(prof: Profile, hw: Hardware, data_dir: Path, etc: Path = Path("/etc"), systemd: bool = False) -> list[str]:
    """Write the profile where it takes effect; returns one line per thing changed."""
    changed: list[str] = []
    data_dir.mkdir(parents=True, exist_ok=True)
    doc = {"hardware": dataclasses.asdict(hw), "profile": dataclasses.asdict(prof)}
    _atomic_write(data_dir / "tune.json", json.dumps(doc, indent=2) + "\n")
    changed.append(f"{data_dir / 'tune.json'}: tier {prof.tier}")
    cfg_path = gkconfig.ensure_config_file(data_dir)
    old = cfg_path.read_text(encoding="utf-8")
    new = tune_config_text(old, prof.config_keys())
    if new != old:
        try:
            gkconfig.ConfigBuilder(str(cfg_path)).merge(tomllib.loads(new)).build()
        except gkconfig.ConfigError as exc:  # never leave a gk.toml that `gk serve` rejects
            raise ValueError(f"tuned {cfg_path} would not load: {exc}") from exc
        gkconfig.write_config_text(data_dir, new, mode=0o640)  # the one durable gk.toml writer
        changed.append(f"{cfg_path}: " + ", ".join(f"{k}={v}" for k, v in prof.config_keys().items()))
    zram = etc / "systemd" / "zram-generator.conf"
    if zram.parent.is_dir() and os.access(zram.parent, os.W_OK):
        text = f"# written by gk tune (tier {prof.tier})\n[zram0]\nzram-size = {prof.zram_mb}\ncompression-algorithm = zstd\n"
        if not zram.exists() or zram.read_text() != text:
            _atomic_write(zram, text)
            changed.append(f"{zram}: zram {prof.zram_mb} MB (from next boot)")
    if systemd:
        cmd = [
            "systemctl", "set-property", "--runtime", "gk.service",
            f"MemoryHigh={prof.memory_high_mb}M", f"MemoryMax={prof.memory_max_mb}M",
        ]  # fmt: skip
        subprocess.run(cmd, check=True)
        changed.append(f"gk.service: MemoryHigh={prof.memory_high_mb}M MemoryMax={prof.memory_max_mb}M")
    return changed


def markdown_table() -> str:
    """The docs/tuning.md table: one row per tier, for a 4-core board on an SD card with room."""
    head = (
        "| RAM | zram | SQLite cache | SMTP / IMAP connections | argon2id | AI model (threads) "
        "| MemoryHigh / MemoryMax |\n|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for ram in (512, 1024, 2048, 4096, 8192):
        p = profile_for(Hardware(ram_mb=ram - 60, cores=4, storage="sd", storage_free_mb=28000))
        model = f"{p.llm_model} ({p.llm_threads})" if p.llm_model else "off"
        rows.append(
            f"| {ram // 1024 if ram >= 1024 else ram} {'GB' if ram >= 1024 else 'MB'} | {p.zram_mb} MB "
            f"| {p.sqlite_cache_kib} KiB | {p.smtp_max_connections} / {p.imap_max_connections} "
            f"| {p.argon2_memory_kib // 1024} MiB, t={p.argon2_time_cost} | {model} "
            f"| {p.memory_high_mb} / {p.memory_max_mb} MB |"
        )
    return "\n".join(rows) + "\n"
