"""Where the guest's memory goes: boot a copy of an x86-64 image as test_image_boot does (wizard,
a mail, a reboot, a login, 20 s idle) and print the guest's own memory breakdown.

    sudo .venv/bin/python tests/image/memdiag.py [image/out/gk-<version>-x86-64.img]

The image itself has no shell on the network, so a copy gets a throwaway systemd timer (written
into its root partition with debugfs: no mount) that prints /proc/meminfo, min_free_kbytes and
the zone watermarks, slabtop, ps, tmpfs use, zram, cgroup memory.current, the running units and
the modules to the serial console every 45 s. The image under test is not modified. Not run by
pytest (no test_ prefix); docs/image.md, "Memory", has the figures it produced.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import test_image_boot as t  # noqa: E402
from gkqemu import Guest  # noqa: E402
from gkwizard import Browser  # noqa: E402

DUMP = r"""#!/bin/bash
exec > /dev/ttyS0 2>&1
m=$(awk '/^MemTotal/{t=$2}/^MemAvailable/{a=$2}END{printf "%d", (t-a)/1024}' /proc/meminfo)
echo "=== MEMDIAG BEGIN uptime=$(cut -d' ' -f1 /proc/uptime) used_mb=$m"
cat /proc/meminfo
echo "--- vm"; echo "min_free_kbytes=$(cat /proc/sys/vm/min_free_kbytes) thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled)"
grep -E "^Node|^ +(min|low|high|managed|protection)" /proc/zoneinfo | head -16
echo "--- slab"; slabtop -o -s c | head -20
echo "--- ps"; ps -eo pid,rss,comm --sort=-rss | awk '$2 > 0'
echo "--- tmpfs"; df -k -t tmpfs
echo "--- zram"; cat /sys/block/zram*/mm_stat; cat /proc/swaps
echo "--- cgroups"; for c in /sys/fs/cgroup/system.slice/*.service /sys/fs/cgroup/init.scope; do
  [ -f "$c/memory.current" ] && echo "$(( $(cat "$c/memory.current") / 1024 ))K ${c##*/}"; done | sort -rn
echo "--- units"; systemctl list-units --type=service --state=running --no-pager --no-legend
echo "--- modules"; lsmod | awk 'NR > 1 {n++; s += $2} END {print n " modules, " s / 1024 " KB"}'
echo "=== MEMDIAG END"
"""
SERVICE = "[Service]\nType=oneshot\nExecStart=/usr/local/sbin/gk-memdiag\n"
TIMER = "[Timer]\nOnBootSec=60\nOnUnitActiveSec=45\nAccuracySec=1\n[Install]\nWantedBy=timers.target\n"


def with_memdiag(image: Path, dest: Path) -> Path:
    """A sparse copy of ``image`` whose root partition has the memdiag timer enabled."""
    subprocess.run(["cp", "--sparse=always", str(image), str(dest)], check=True)
    table = json.loads(subprocess.run(["sfdisk", "-J", str(dest)], capture_output=True, check=True).stdout)
    root = next(p for p in table["partitiontable"]["partitions"] if p.get("name") == "gk-root")
    files = dest.parent / "memdiag-files"
    files.mkdir(exist_ok=True)
    for name, text in {"gk-memdiag": DUMP, "gk-memdiag.service": SERVICE, "gk-memdiag.timer": TIMER}.items():
        (files / name).write_text(text)
    ext4 = dest.parent / "root.ext4"
    dd = ["dd", "bs=512", "conv=sparse,notrunc", "status=none"]
    subprocess.run([*dd, f"if={dest}", f"of={ext4}", f"skip={root['start']}", f"count={root['size']}"], check=True)
    script = (
        f"write {files}/gk-memdiag /usr/local/sbin/gk-memdiag\n"
        "set_inode_field /usr/local/sbin/gk-memdiag mode 0100755\n"
        f"write {files}/gk-memdiag.service /etc/systemd/system/gk-memdiag.service\n"
        f"write {files}/gk-memdiag.timer /etc/systemd/system/gk-memdiag.timer\n"
        "symlink /etc/systemd/system/timers.target.wants/gk-memdiag.timer /etc/systemd/system/gk-memdiag.timer\n"
    )
    subprocess.run(["debugfs", "-w", "-f", "-", str(ext4)], input=script.encode(), capture_output=True, check=True)
    subprocess.run([*dd, f"if={ext4}", f"of={dest}", f"seek={root['start']}"], check=True)
    ext4.unlink()
    return dest


def main() -> int:
    out = HERE.parents[1] / "image" / "out"
    image = Path(sys.argv[1]) if len(sys.argv) > 1 else sorted(out.glob("gk-*-x86-64.img"))[-1]
    work = Path(tempfile.mkdtemp(prefix="gk-memdiag-"))
    guest = Guest(with_memdiag(image, work / "memdiag.img"), work)
    try:
        guest.start()
        t.wait_http(guest, "/wizard/claim", t.BOOT_TIMEOUT)
        t.run_wizard(
            Browser(f"http://127.0.0.1:{guest.ports['http']}", f"https://127.0.0.1:{guest.ports['https']}"),
            t.setup_code_from_boot_partition(guest),
        )
        subject, marker = f"memdiag {uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        t.send_mail(guest, subject, marker)
        assert marker.encode() in t.read_mail(guest, subject)
        guest.powerdown()
        guest.start()
        t.wait_http(guest, "/login", t.BOOT_TIMEOUT)
        guest.wait_banner("submission", b"220", 120)
        assert marker.encode() in t.read_mail(guest, subject)
        time.sleep(20)
        mem = t.guest_memory(guest)
        print(f"used (as test_image_boot measures it): {mem['total_mb'] - mem['available_mb']} MB", flush=True)
        seen = guest.serial().count("=== MEMDIAG END")
        deadline = time.monotonic() + 120
        while guest.serial().count("=== MEMDIAG END") == seen and time.monotonic() < deadline:
            time.sleep(5)
    finally:
        guest.kill()
    log = guest.serial().replace("\r", "")
    start = log.rfind("=== MEMDIAG BEGIN")
    print(log[start : log.find("=== MEMDIAG END", start) + 15] if start >= 0 else "no memdiag dump on the console")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
