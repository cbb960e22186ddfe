"""A GK image booted in QEMU (TCG, OVMF, 1 GB) with loopback-only port forwards.

``Guest`` owns one qemu-system process on a private copy of the image (sparse copy, grown to
``disk_gb`` so first boot's grow-root step has room), a serial log file and a monitor socket.
The boot partition of the copy is read with mtools (``mtype -i disk@@offset``): no mount.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.ports import free_port

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")  # qemu-efi-aarch64: UEFI for qemu -M virt
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")
GUEST_PORTS = {"http": 80, "https": 443, "smtp": 25, "submission": 587, "submissions": 465, "imap": 143, "imaps": 993}
BOOT_PART_OFFSET = 1024 * 1024  # p1 starts at 1 MiB (image/assemble.sh)


@dataclass
class Guest:
    image: Path
    workdir: Path
    memory_mb: int = 1024
    disk_gb: int = 4
    arch: str = "x86-64"  # or "arm64": qemu-system-aarch64 -M virt with AAVMF
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    boots: int = 0

    def __post_init__(self) -> None:
        self.disk = self.workdir / "disk.img"
        self.vars = self.workdir / "OVMF_VARS.fd"
        self.monitor_path = self.workdir / "monitor.sock"
        if not self.disk.exists():
            subprocess.run(["cp", "--sparse=always", str(self.image), str(self.disk)], check=True)
            with open(self.disk, "r+b") as f:
                f.truncate(self.disk_gb * 1024**3)
            shutil.copy(AAVMF_VARS if self.arch == "arm64" else OVMF_VARS, self.vars)
        self.ports = {name: free_port() for name in GUEST_PORTS}

    @property
    def serial_log(self) -> Path:
        return self.workdir / f"serial-{self.boots}.log"

    def start(self) -> None:
        self.boots += 1
        fwd = ",".join(f"hostfwd=tcp:127.0.0.1:{self.ports[n]}-:{p}" for n, p in GUEST_PORTS.items())
        if self.arch == "arm64":
            # cortex-a72 is the Raspberry Pi 4's core; two vCPUs run as two host threads (MTTCG);
            # the virtio keyboard takes the monitor's sendkey for the button.
            machine = [
                "qemu-system-aarch64",
                "-machine",
                "virt",
                "-accel",
                "tcg,thread=multi",
                "-cpu",
                "cortex-a72",
                "-smp",
                "2",
                "-device",
                "virtio-keyboard-pci",
            ]
            code = AAVMF_CODE
        else:
            machine = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "1"]
            code = OVMF_CODE
        cmd = [
            *machine,
            "-m", str(self.memory_mb), "-display", "none", "-no-user-config", "-nodefaults",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={self.vars}",
            "-drive", f"file={self.disk},format=raw,if=virtio,cache=writeback,discard=unmap",
            "-netdev", f"user,id=n0,restrict=off,{fwd}", "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
            "-serial", f"file:{self.serial_log}",
            "-monitor", f"unix:{self.monitor_path},server,nowait",
        ]  # fmt: skip
        self.monitor_path.unlink(missing_ok=True)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=open(self.workdir / "qemu.err", "ab"))
        self.started_at = time.monotonic()

    def monitor(self, command: str) -> str:
        deadline = time.monotonic() + 10
        while not self.monitor_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(self.monitor_path))
            s.sendall(command.encode() + b"\n")
            time.sleep(0.5)
            with contextlib.suppress(TimeoutError, OSError):
                return s.recv(65536).decode(errors="replace")
        return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def serial(self) -> str:
        try:
            return self.serial_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_serial(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.serial())
            if m:
                return m
            assert self.alive(), f"QEMU exited; serial log tail:\n{self.serial()[-3000:]}"
            time.sleep(1)
        raise AssertionError(f"no {pattern!r} on the serial console in {timeout:.0f}s; tail:\n{self.serial()[-3000:]}")

    def banner(self, name: str, timeout: float = 5.0) -> bytes:
        """The first line a guest service sends (QEMU accepts every forwarded connect itself)."""
        with socket.create_connection(("127.0.0.1", self.ports[name]), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(512)

    def wait_banner(self, name: str, prefix: bytes, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                data = self.banner(name)
                if data.startswith(prefix):
                    return time.monotonic() - self.started_at
                last = data
            except OSError as exc:
                last = exc
            assert self.alive(), f"QEMU exited; serial tail:\n{self.serial()[-3000:]}"
            time.sleep(2)
        raise AssertionError(f"{name} never answered {prefix!r} within {timeout:.0f}s (last: {last!r})")

    def read_boot_file(self, name: str) -> bytes | None:
        """A file of the FAT boot partition of the (possibly running) guest's disk, via mtools."""
        r = subprocess.run(
            ["mtype", "-i", f"{self.disk}@@{BOOT_PART_OFFSET}", f"::{name}"], capture_output=True, check=False
        )
        return r.stdout if r.returncode == 0 else None

    def powerdown(self, timeout: float = 180) -> None:
        """ACPI power button: a clean shutdown; QEMU exits when the guest powers off."""
        assert self.proc is not None
        self.monitor("system_powerdown")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"guest did not power off in {timeout:.0f}s; tail:\n{self.serial()[-3000:]}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
