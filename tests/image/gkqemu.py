"""A GK image booted in QEMU (TCG, OVMF, 1 GB) with loopback-only port forwards.

``Guest`` owns one qemu-system process on a private copy of the image (sparse copy, grown to
``disk_gb`` so first boot's grow-root step has room), a serial log file and a monitor socket.
The boot partition of the copy is read with mtools (``mtype -i disk@@offset``): no mount.

``probe=True`` gives the copy (never the image under test) a test-only root shell on a virtio
serial port, written into its root partition with debugfs before the first boot, so a test can
ask the guest what only the guest knows (``systemctl --failed``, ``timedatectl``, mount options):
``Guest.sh("systemctl --failed")``. The image itself has no shell on the network.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from support.ports import free_port

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")  # qemu-efi-aarch64: UEFI for qemu -M virt
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")
GUEST_PORTS = {
    "http": 80,
    "https": 443,
    "smtp": 25,
    "submission": 587,
    "submissions": 465,
    "imap": 143,
    "imaps": 993,
    "irc": 6697,
}
BOOT_PART_OFFSET = 1024 * 1024  # p1 starts at 1 MiB (image/assemble.sh)
FAT32_STATE_OFFSET = 0x41  # FAT32 boot sector byte Linux sets to 1 (dirty) while mounted read-write

PROBE_NAME = "gk.probe"
PROBE_SCRIPT = r"""#!/bin/bash
# Image test only (tests/image/gkqemu.py): each line "ID COMMAND" the host writes to the virtio
# port gk.probe runs as a root shell command; the answer is its output, then "=== GK-PROBE ID rc=N".
port=/dev/virtio-ports/gk.probe
while :; do
  if [ -c "$port" ] && exec 3<>"$port"; then
    while IFS=' ' read -r id line <&3; do
      out=$(timeout 900 bash -c "$line" 2>&1 </dev/null); rc=$?
      printf '%s\n=== GK-PROBE %s rc=%d\n' "$out" "$id" "$rc" >&3
    done
    exec 3<&-
  fi
  sleep 2  # no host on the other end yet (reads see EOF): look again
done
"""
PROBE_UNIT = """[Unit]
Description=GK image test probe (test copies of the image only)

[Service]
ExecStart=/usr/local/sbin/gk-test-probe
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


def write_into_root(disk: Path, files: dict[str, tuple[str, int]], links: dict[str, str]) -> None:
    """Add ``files`` (guest path → text, mode) and ``links`` (link → target) to the ext4 root
    partition of ``disk`` with debugfs: no mount, no loop device."""
    table = json.loads(subprocess.run(["sfdisk", "-J", str(disk)], capture_output=True, check=True).stdout)
    root = next(p for p in table["partitiontable"]["partitions"] if p.get("name") == "gk-root")
    staging = disk.parent / "root-files"
    staging.mkdir(exist_ok=True)
    script = []
    for i, (path, (text, mode)) in enumerate(files.items()):
        (staging / str(i)).write_text(text)
        script += [f"write {staging / str(i)} {path}", f"set_inode_field {path} mode 0{0o100000 | mode:o}"]
    script += [f"symlink {link} {target}" for link, target in links.items()]
    ext4 = disk.parent / "root.ext4"
    dd = ["dd", "bs=512", "conv=sparse,notrunc", "status=none"]
    subprocess.run([*dd, f"if={disk}", f"of={ext4}", f"skip={root['start']}", f"count={root['size']}"], check=True)
    r = subprocess.run(["debugfs", "-w", "-f", "-", str(ext4)], input="\n".join(script).encode(), capture_output=True)
    assert r.returncode == 0 and b"rror" not in r.stderr, f"debugfs: {r.stderr.decode(errors='replace')}"
    subprocess.run([*dd, f"if={ext4}", f"of={disk}", f"seek={root['start']}"], check=True)
    ext4.unlink()
    shutil.rmtree(staging)


@dataclass
class Guest:
    image: Path
    workdir: Path
    memory_mb: int = 1024
    disk_gb: int = 4
    arch: str = "x86-64"  # or "arm64": qemu-system-aarch64 -M virt with AAVMF
    probe: bool = False  # a test-only root shell on a virtio serial port (see the module docstring)
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
            if self.probe:
                write_into_root(
                    self.disk,
                    {
                        "/usr/local/sbin/gk-test-probe": (PROBE_SCRIPT, 0o755),
                        "/etc/systemd/system/gk-test-probe.service": (PROBE_UNIT, 0o644),
                    },
                    {
                        "/etc/systemd/system/multi-user.target.wants/gk-test-probe.service": (
                            "/etc/systemd/system/gk-test-probe.service"
                        )
                    },
                )
        self.probe_path = self.workdir / "probe.sock"
        self._probe: socket.socket | None = None
        self._probe_buf = b""
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
        if self.probe:
            cmd += [
                "-device", "virtio-serial-pci,id=vser0",
                "-chardev", f"socket,id=probe,path={self.probe_path},server=on,wait=off",
                "-device", f"virtserialport,bus=vser0.0,chardev=probe,name={PROBE_NAME}",
            ]  # fmt: skip
        self.monitor_path.unlink(missing_ok=True)
        self.probe_path.unlink(missing_ok=True)
        self._close_probe()
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

    def _close_probe(self) -> None:
        if self._probe is not None:
            self._probe.close()
        self._probe, self._probe_buf = None, b""

    def _probe_answer(self, ident: str, timeout: float) -> tuple[int, str] | None:
        """The answer to command ``ident`` (None if it did not come in ``timeout`` s): the text
        between the previous answer's marker and its own (an unanswered earlier sync may answer late)."""
        assert self._probe is not None
        marker = re.compile(rb"^=== GK-PROBE (\S+) rc=(\d+)\n", re.M)
        deadline = time.monotonic() + timeout
        while True:
            start = 0
            for m in marker.finditer(self._probe_buf):
                if m.group(1).decode() == ident:
                    out = self._probe_buf[start : m.start()].decode(errors="replace")
                    self._probe_buf = self._probe_buf[m.end() :]
                    return int(m.group(2)), out.rstrip("\n")
                start = m.end()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            assert self.alive(), f"QEMU exited; serial tail:\n{self.serial()[-3000:]}"
            self._probe.settimeout(min(left, 2.0))
            try:
                data = self._probe.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise AssertionError("the guest's probe port closed")
            self._probe_buf += data

    def sh(self, command: str, timeout: float = 900) -> tuple[int, str]:
        """(exit status, output) of a root shell command in the guest (``probe=True`` only).

        The first call after a start waits until the guest's probe answers (boot takes minutes
        under TCG): a no-op is sent every 5 s until one comes back."""
        assert self.probe, "Guest(probe=True) is needed to run commands in the guest"
        assert "\n" not in command, "one line per command"
        deadline = time.monotonic() + timeout
        if self._probe is None:
            while not self.probe_path.exists():
                assert self.alive() and time.monotonic() < deadline, "QEMU never opened the probe socket"
                time.sleep(0.2)
            self._probe = socket.socket(socket.AF_UNIX)
            self._probe.connect(str(self.probe_path))
            while True:
                ident = uuid.uuid4().hex[:12]
                self._probe.sendall(f"{ident} true\n".encode())
                if self._probe_answer(ident, 5) is not None:
                    break
                assert time.monotonic() < deadline, (
                    f"no answer from the guest's probe; serial tail:\n{self.serial()[-3000:]}"
                )
        ident = uuid.uuid4().hex[:12]
        self._probe.sendall(f"{ident} {command}\n".encode())
        answer = self._probe_answer(ident, max(1.0, deadline - time.monotonic()))
        assert answer is not None, f"the guest did not answer {command!r} in {timeout:.0f}s"
        return answer

    def boot_partition_dirty(self) -> bool:
        """The FAT32 dirty flag of the copy's boot partition, as a power cut now would leave it."""
        with open(self.disk, "rb") as f:
            f.seek(BOOT_PART_OFFSET + FAT32_STATE_OFFSET)
            return bool(f.read(1)[0] & 0x01)

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
        self._close_probe()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
