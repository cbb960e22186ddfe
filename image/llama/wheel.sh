#!/bin/bash
# The image's llama-cpp-python wheel, portable, for one architecture (issue 14 §6; DESIGN.md: the
# PyPI package is an sdist that compiles llama.cpp with -march=native by default, and a wheel built
# that way crashes on another CPU).
#
#   image/llama/wheel.sh ARCH(x86-64|arm64) OUT_DIR      (make llama-wheel ARCH=…)
#
# x86-64: `pip wheel` with CMAKE_ARGS=-DGGML_NATIVE=OFF (pip's cache keeps the ~5 min compile that
#   `make setup` already did); refused if the build records GGML_NATIVE=ON. Baseline: llama.cpp's
#   non-native x86 defaults, SSE4.2 + AVX + AVX2 + FMA + F16C + BMI2 (x86-64-v3: Haswell 2013 and
#   later, Intel N100/N5105, AMD Zen).
# arm64: llama.cpp (the sdist's vendored copy) cross-compiled with Debian's gcc-aarch64-linux-gnu
#   (toolchain: aarch64-linux-gnu.cmake), GGML_NATIVE=OFF, -march=armv8-a: runs on the Pi 4's
#   Cortex-A72 as on the Pi 5's A76 (no +dotprod: this llama.cpp picks CPU features at build
#   time unless built as several dynamically loaded backends). ~10-20 min on 2 busy cores, once.
# Either way the bindings are ctypes over shared libraries, so the wheel (image/llama/pack.py) is
# the sdist's Python package plus the five libraries it loads, tagged py3-none-linux_<arch>.
# Checked: every library is an ELF of the target machine (readelf), and on arm64, when
# qemu-aarch64 is there, llama.cpp's llama-simple example built against the same libraries runs
# the tiny test GGUF under qemu-user (GK_LLAMA_CHECK_GGUF=path; tests/support/tinygguf.py).
# Outputs are cached per (version, arch) under $GK_IMAGE_CACHE/llama/.
set -euo pipefail
arch=${1:?arch x86-64|arm64}; out=${2:?out dir}
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$(dirname "$here")")
py=${GK_HOST_PYTHON:-$repo/.venv/bin/python}
[ -x "$py" ] || py=$(command -v python3.11) || { echo "llama-wheel: need Python 3.11" >&2; exit 1; }
ver=$("$py" - "$repo/appliance/pyproject.toml" <<'PY'
import sys, tomllib
extra = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["ai"]
print(next(d.split("==", 1)[1] for d in extra if d.startswith("llama-cpp-python==")))
PY
)
cache=${GK_IMAGE_CACHE:-/var/cache/gk-image}/llama/$ver
case "$arch" in
  x86-64|x86_64|amd64) arch=x86-64; tag=linux_x86_64; machine="Advanced Micro Devices X86-64" ;;
  arm64|aarch64) arch=arm64; tag=linux_aarch64; machine=AArch64 ;;
  *) echo "llama-wheel: unknown architecture $arch (x86-64, arm64)" >&2; exit 2 ;;
esac
whl="$cache/llama_cpp_python-$ver-py3-none-$tag.whl"
t0=$(date +%s)
pip_quiet=(--disable-pip-version-check --quiet --progress-bar off)

src="$cache/src/llama_cpp_python-$ver"
if [ ! -f "$src/PKG-INFO" ]; then
  echo "llama-wheel: fetching the llama-cpp-python $ver sdist"
  rm -rf "$cache/src"; mkdir -p "$cache/src"
  "$py" -m pip download "${pip_quiet[@]}" --no-deps --no-binary :all: --no-build-isolation -d "$cache/src" \
    "llama-cpp-python==$ver" 2>/dev/null \
    || "$py" -m pip download "${pip_quiet[@]}" --no-deps --no-binary :all: -d "$cache/src" "llama-cpp-python==$ver"
  tar -C "$cache/src" -xzf "$cache/src/llama_cpp_python-$ver.tar.gz"
fi

check_libs() {  # every library is an ELF for the target machine: no host object slipped in
  local f m bad=0
  for f in "$1"/*.so*; do
    m=$(readelf -h "$f" | sed -n 's/^ *Machine: *//p')
    [ "$m" = "$machine" ] || { echo "llama-wheel: $f is for '$m', not $machine" >&2; bad=1; }
  done
  [ $bad = 0 ]
}

if [ ! -f "$whl" ]; then
  libs="$cache/lib-$arch"; rm -rf "$libs"; mkdir -p "$libs"
  if [ "$arch" = x86-64 ]; then
    echo "llama-wheel: pip wheel llama-cpp-python==$ver with GGML_NATIVE=OFF (a cached build is reused)"
    tmp="$cache/pip-x86-64"; rm -rf "$tmp"; mkdir -p "$tmp"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" nice -n "${GK_NICE:-10}" "$py" -m pip wheel "${pip_quiet[@]}" --no-deps \
      -w "$tmp" "llama-cpp-python==$ver"
    (cd "$tmp" && "$py" -m zipfile -e llama_cpp_python-*.whl x)
    grep -q 'set(GGML_NATIVE "OFF")' "$tmp"/x/lib/cmake/ggml/ggml-config.cmake 2>/dev/null \
      || { echo "llama-wheel: pip's cached llama-cpp-python wheel was built with GGML_NATIVE=ON (not portable):" \
                "run: $py -m pip cache remove llama_cpp_python, then again" >&2; exit 1; }
    cp -L "$tmp"/x/llama_cpp/lib/*.so* "$libs/"
    rm -rf "$tmp"
  else
    command -v aarch64-linux-gnu-g++ >/dev/null \
      || { echo "llama-wheel: no cross compiler: apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu cmake ninja-build" >&2; exit 1; }
    echo "llama-wheel: cross-compiling llama.cpp for arm64 (armv8-a, GGML_NATIVE=OFF); ~10-20 min on 2 cores"
    build="$cache/build-arm64"
    cmake -S "$src/vendor/llama.cpp" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_TOOLCHAIN_FILE="$here/aarch64-linux-gnu.cmake" -DBUILD_SHARED_LIBS=ON \
      -DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a -DGGML_OPENMP=ON \
      -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
      -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON -DCMAKE_INSTALL_RPATH='$ORIGIN' \
      > "$cache/cmake-arm64.log" 2>&1 || { tail -30 "$cache/cmake-arm64.log" >&2; exit 1; }
    nice -n "${GK_NICE:-10}" cmake --build "$build" --target llama ggml -j "$(nproc)" > "$cache/build-arm64.log" 2>&1 \
      || { tail -30 "$cache/build-arm64.log" >&2; exit 1; }
    for n in libllama.so libggml.so libggml.so.0 libggml-base.so.0 libggml-cpu.so.0; do
      f=$(find "$build" -name "$n" | head -1); [ -n "$f" ] || { echo "llama-wheel: the build made no $n" >&2; exit 1; }
      cp -L "$f" "$libs/$n"
    done
  fi
  check_libs "$libs"
  "$py" "$here/pack.py" "$src" "$libs" "$tag" "$cache" >/dev/null
fi

if [ "$arch" = arm64 ] && [ -n "${GK_LLAMA_CHECK_GGUF:-}" ]; then
  if command -v qemu-aarch64-static >/dev/null || command -v qemu-aarch64 >/dev/null; then
    q=$(command -v qemu-aarch64-static || command -v qemu-aarch64)
    chk="$cache/check-arm64"; rm -rf "$chk"; mkdir -p "$chk"
    (cd "$chk" && "$py" -m zipfile -e "$whl" w)
    ln -s libllama.so "$chk/w/llama_cpp/lib/libllama.so.0"  # the program links by soname; Python opens the file
    aarch64-linux-gnu-g++ -std=c++17 -O1 -o "$chk/llama-simple" "$src/vendor/llama.cpp/examples/simple/simple.cpp" \
      -I "$src/vendor/llama.cpp/include" -I "$src/vendor/llama.cpp/ggml/include" \
      "$chk/w/llama_cpp/lib/libllama.so" "$chk/w/llama_cpp/lib/libggml-base.so.0" -Wl,-rpath,"$chk/w/llama_cpp/lib"
    echo "llama-wheel: running the tiny GGUF with the arm64 libraries under $(basename "$q")"
    "$q" -L /usr/aarch64-linux-gnu "$chk/llama-simple" -m "$GK_LLAMA_CHECK_GGUF" -n 8 "hello" > "$chk/run.log" 2>&1 \
      || { tail -20 "$chk/run.log" >&2; echo "llama-wheel: the arm64 libraries failed under qemu-user" >&2; exit 1; }
    grep -E "decoded [0-9]+ tokens" "$chk/run.log" || { tail -20 "$chk/run.log" >&2; exit 1; }
  else
    echo "llama-wheel: qemu-aarch64 missing (apt-get install qemu-user-static): arm64 run check skipped" >&2
  fi
fi
mkdir -p "$out"; cp "$whl" "$out/"
echo "llama-wheel: $(basename "$whl") $(( $(stat -c %s "$whl") / 1024 )) KiB ($(( $(date +%s) - t0 )) s)"
