"""image/llama/pack.py: the image's slim llama-cpp-python wheel (issue 14 §6) holds the sdist's
Python package and exactly the libraries the ctypes bindings load, under a correct RECORD and the
target's platform tag, and pip installs it. The libraries here are stand-ins (the real build is
image/llama/wheel.sh, minutes long; `make llama-wheel`)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PACK = Path(__file__).resolve().parents[2] / "image" / "llama" / "pack.py"


def _pack():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gk_image_llama_pack", PACK)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sdist(root: Path) -> Path:
    sd = root / "llama_cpp_python-9.8.7"
    (sd / "llama_cpp" / "lib").mkdir(parents=True)
    (sd / "llama_cpp" / "server").mkdir()
    (sd / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: 9.8.7\n")
    (sd / "LICENSE.md").write_text("MIT\n")
    (sd / "llama_cpp" / "__init__.py").write_text("VALUE = 42\n")
    (sd / "llama_cpp" / "server" / "app.py").write_text("")
    (sd / "llama_cpp" / "lib" / "stale.so").write_bytes(b"host build left in the tree")
    return sd


def _libs(root: Path, pack) -> Path:  # type: ignore[no-untyped-def]
    d = root / "libs"
    d.mkdir()
    for name in pack.LIBS:
        (d / name).write_bytes(f"ELF stand-in {name}".encode())
    (d / "libmtmd.so").write_bytes(b"not wanted")
    return d


def test_wheel_holds_the_package_and_only_the_loaded_libraries(tmp_path: Path) -> None:
    pack = _pack()
    whl = pack.main(_sdist(tmp_path), _libs(tmp_path, pack), "linux_aarch64", tmp_path / "out")
    assert whl.name == "llama_cpp_python-9.8.7-py3-none-linux_aarch64.whl"
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        libs = {n.rsplit("/", 1)[1] for n in names if n.startswith("llama_cpp/lib/")}
        assert libs == set(pack.LIBS)  # not libmtmd, not the sdist's stale lib/
        assert {"llama_cpp/__init__.py", "llama_cpp/server/app.py"} <= names
        info = "llama_cpp_python-9.8.7.dist-info"
        assert "Tag: py3-none-linux_aarch64" in z.read(f"{info}/WHEEL").decode()
        assert "Root-Is-Purelib: false" in z.read(f"{info}/WHEEL").decode()
        record = z.read(f"{info}/RECORD").decode().splitlines()
        assert len(record) == len(names)
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            if name.endswith("RECORD"):
                continue
            data = z.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}" and int(size) == len(data), name


def test_pip_installs_it(tmp_path: Path) -> None:
    pack = _pack()
    tag = "linux_x86_64" if sys.platform == "linux" and Path("/lib64").exists() else "any"
    whl = pack.main(_sdist(tmp_path), _libs(tmp_path, pack), tag, tmp_path / "out")
    target = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(whl)],
        capture_output=True,
        text=True,
    )
    if r.returncode and "is not a supported wheel on this platform" in r.stderr:
        pytest.skip("this host's platform tag differs")
    assert r.returncode == 0, r.stderr
    assert (target / "llama_cpp" / "lib" / "libllama.so").read_bytes() == b"ELF stand-in libllama.so"
    assert (target / "llama_cpp" / "__init__.py").read_text() == "VALUE = 42\n"


def test_a_missing_library_stops_the_build(tmp_path: Path) -> None:
    pack = _pack()
    libs = _libs(tmp_path, pack)
    (libs / "libggml-cpu.so.0").unlink()
    with pytest.raises(SystemExit, match="libggml-cpu.so.0 missing"):
        pack.main(_sdist(tmp_path), libs, "linux_aarch64", tmp_path / "out")
    assert not list(tmp_path.glob("out/*.whl"))
