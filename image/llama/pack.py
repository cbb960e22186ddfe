"""Pack a slim llama-cpp-python wheel for the image (image/llama/wheel.sh).

usage: pack.py SDIST_DIR LIB_DIR PLATFORM_TAG OUT_DIR

The wheel holds the sdist's pure-Python package ``llama_cpp/`` (ctypes bindings, identical on
every architecture), the sdist's PKG-INFO as METADATA, and from LIB_DIR only the shared
libraries the bindings load: ``libllama.so`` (opened by path) and what it needs by soname
(``libggml.so.0``, ``libggml-base.so.0``, ``libggml-cpu.so.0``), plus ``libggml.so``. The
upstream build also installs headers, CMake files, a second copy of every library outside the
package, every soname link as a full copy, libmtmd (multimodal) and libllama-common: about
62 MB installed that GK never loads.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

LIBS = ["libllama.so", "libggml.so", "libggml.so.0", "libggml-base.so.0", "libggml-cpu.so.0"]


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def main(sdist: Path, libdir: Path, tag: str, out: Path) -> Path:
    meta = (sdist / "PKG-INFO").read_text()
    version = next(ln.split(":", 1)[1].strip() for ln in meta.splitlines() if ln.startswith("Version:"))
    files: dict[str, bytes] = {}
    for p in sorted((sdist / "llama_cpp").rglob("*")):
        rel = p.relative_to(sdist).as_posix()
        if p.is_file() and "/lib/" not in f"/{rel}" and "__pycache__" not in rel and not rel.endswith((".so", ".pyc")):
            files[rel] = p.read_bytes()
    for name in LIBS:
        lib = libdir / name
        if not lib.exists():
            raise SystemExit(f"pack: {lib} missing (the build did not produce it)")
        files[f"llama_cpp/lib/{name}"] = lib.resolve().read_bytes()
    info = f"llama_cpp_python-{version}.dist-info"
    files[f"{info}/METADATA"] = meta.encode()
    files[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: gk image/llama/pack.py\nRoot-Is-Purelib: false\nTag: py3-none-{tag}\n"
    ).encode()
    lic = sdist / "LICENSE.md"
    if lic.exists():
        files[f"{info}/licenses/LICENSE.md"] = lic.read_bytes()
    record = [record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    out.mkdir(parents=True, exist_ok=True)
    whl = out / f"llama_cpp_python-{version}-py3-none-{tag}.whl"
    tmp = whl.with_name(whl.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in files.items():
            zi = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = (0o755 if name.endswith(".so") or ".so." in name else 0o644) << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
        z.writestr(zipfile.ZipInfo(f"{info}/RECORD", date_time=(2020, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    tmp.rename(whl)
    return whl


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    print(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])))
