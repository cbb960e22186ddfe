"""The QEMU image test runs only where images can be built and booted: root, mkosi >= 24,
qemu-system-x86_64, OVMF, mtools. Elsewhere it skips LOUDLY — and with GK_REQUIRE_IMAGE_TEST=1
(set by .ci/run) a skip is a failure.

The image is built by ``image/build.sh`` (caches in GK_IMAGE_CACHE make a rebuild ~1-2 min);
``GK_IMAGE=path/to/gk-*.img`` boots an existing image instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gkqemu import OVMF_CODE

REPO = Path(__file__).resolve().parents[2]
# The arm64 boot test is opt-in (`make image-test-arm64` sets GK_IMAGE_ARM64): not collected otherwise.
collect_ignore = [] if os.environ.get("GK_IMAGE_ARM64") else ["test_image_arm64.py"]


def missing_prerequisites() -> list[str]:
    why = []
    if os.geteuid() != 0:
        why.append("not root (mkosi needs root: run `sudo make image-test`)")
    for tool, pkg in [
        ("mkosi", "-t bookworm-backports mkosi"),
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("mtype", "mtools"),
        ("mkfs.vfat", "dosfstools"),
        ("bmaptool", "bmap-tools"),
    ]:
        if not shutil.which(tool):
            why.append(f"{tool} missing (apt-get install {pkg}; `make image-deps` installs all)")
    if not OVMF_CODE.exists():
        why.append(f"{OVMF_CODE} missing (apt-get install ovmf)")
    return why


def _skip_or_fail(reason: str) -> None:
    msg = f"IMAGE TEST SKIPPED: {reason}"
    print(f"\n{'!' * 78}\n{msg}\n{'!' * 78}", file=sys.stderr)
    if os.environ.get("GK_REQUIRE_IMAGE_TEST") == "1":
        pytest.fail(f"{msg} — and GK_REQUIRE_IMAGE_TEST=1 makes that a failure")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def gk_image() -> Path:
    given = os.environ.get("GK_IMAGE")
    if given:
        return Path(given)
    why = missing_prerequisites()
    if why and os.geteuid() == 0 and os.environ.get("GK_REQUIRE_IMAGE_TEST") == "1":
        # CI (root, the image test required): install the image tools, then look again.
        print(f"\nimage test: installing image tools ({'; '.join(why)})", file=sys.stderr)
        subprocess.run(["make", "-C", str(REPO), "image-deps"], check=False)
        why = missing_prerequisites()
    if why:
        _skip_or_fail("; ".join(why))
    out = Path(os.environ.get("GK_IMAGE_OUT", REPO / "image" / "out"))
    t0 = time.monotonic()
    r = subprocess.run(
        ["bash", str(REPO / "image" / "build.sh")], env={**os.environ, "ARCH": "x86-64", "OUT": str(out)}
    )
    assert r.returncode == 0, "make image failed (its output above names the cause)"
    images = sorted(out.glob("gk-*-x86-64.img"), key=lambda p: p.stat().st_mtime)
    assert images, f"no gk-*-x86-64.img in {out}"
    xz = images[-1].with_name(images[-1].name + ".xz")
    print(
        f"\nIMAGE: built in {time.monotonic() - t0:.0f}s; {xz.name} {xz.stat().st_size / 1e6:.0f} MB compressed, "
        f"{images[-1].stat().st_size / 1e6:.0f} MB raw",
        file=sys.stderr,
    )
    return images[-1]
