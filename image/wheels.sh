#!/bin/bash
# Wheel cache for the image: every dependency of appliance/pyproject.toml as a cp311 wheel for
# the target architecture, built or downloaded ONCE per (architecture, dependency list) and kept
# under $CACHE/wheels/<arch>/<hash>/; GK's own (pure Python) wheel is rebuilt on every call.
# Prints the directory to mount into the image build (deps hard-linked + gk wheel).
#
# usage: image/wheels.sh ARCH(x86-64|arm64) CACHE_DIR STAGE_DIR
# x86-64 wheels come from `pip wheel` on this (x86-64, Python 3.11) host; arm64 takes the pure
# wheels from the x86-64 set and downloads the manylinux aarch64 builds of the same versions.
# llama-cpp-python (the assistant, issue 14), an sdist only, comes from image/llama/wheel.sh: a
# portable build per architecture (GGML_NATIVE=OFF; arm64 cross-compiled), cached beside these.
set -euo pipefail
arch=${1:?arch}; cache=${2:?cache dir}; stage=${3:?stage dir}
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
py=${GK_HOST_PYTHON:-$repo/.venv/bin/python}
[ -x "$py" ] || py=$(command -v python3.11) || { echo "wheels: need Python 3.11 (apt-get install python3.11 python3.11-venv)" >&2; exit 1; }
"$py" -c 'import sys; assert sys.version_info[:2] == (3, 11)' || { echo "wheels: $py is not Python 3.11 (the image runs 3.11)" >&2; exit 1; }

reqs=$("$py" - "$repo/appliance/pyproject.toml" <<'PY'
import sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
# The assistant's runtime: llama-cpp-python's own dependencies, pinned here (its wheel is built
# by image/llama/wheel.sh at the version of the `ai` extra); gguf (test-only) stays out.
deps += ["numpy==2.4.6", "diskcache==5.6.3", "typing-extensions==4.16.0"]
print("\n".join(sorted(deps)))
PY
)
key=$(printf '%s\n%s\n' "cp311" "$reqs" | sha256sum | cut -c1-16)
base="$cache/wheels/x86-64/$key"
dest="$cache/wheels/$arch/$key"

pip_quiet=(--disable-pip-version-check --quiet --progress-bar off)
build_x86() {
  [ -f "$base/.complete" ] && return 0
  echo "wheels: building the x86-64 dependency set ($key) — once per dependency change"
  rm -rf "$base.partial"; mkdir -p "$base.partial"
  printf '%s\n' "$reqs" > "$base.partial/requirements.txt"
  "$py" -m pip wheel "${pip_quiet[@]}" --wheel-dir "$base.partial" -r "$base.partial/requirements.txt" \
    || { echo "wheels: pip wheel failed (package download or build): see the pip error above" >&2; exit 1; }
  touch "$base.partial/.complete"; rm -rf "$base"; mv "$base.partial" "$base"
}
build_foreign() {
  [ -f "$dest/.complete" ] && return 0
  local plat
  case "$arch" in
    arm64) plat=(--platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64
                 --platform manylinux_2_34_aarch64 --platform manylinux_2_36_aarch64) ;;
    *) echo "wheels: unknown architecture $arch" >&2; exit 2 ;;
  esac
  echo "wheels: assembling the $arch dependency set ($key)"
  rm -rf "$dest.partial"; mkdir -p "$dest.partial"
  for whl in "$base"/*.whl; do
    name=$(basename "$whl")
    if [[ $name == *-none-any.whl ]]; then cp "$whl" "$dest.partial/"; continue; fi
    dist=${name%%-*}; ver=$(cut -d- -f2 <<<"$name")
    "$py" -m pip download "${pip_quiet[@]}" --no-deps --only-binary=:all: "${plat[@]}" --python-version 3.11 \
      --implementation cp --abi cp311 -d "$dest.partial" "$dist==$ver" \
      || { echo "wheels: no $arch wheel of $dist $ver on PyPI: it must be compiled for $arch (not supported yet)" >&2; exit 1; }
  done
  touch "$dest.partial/.complete"; rm -rf "$dest"; mv "$dest.partial" "$dest"
}

mkdir -p "$cache/wheels"
build_x86
[ "$arch" = x86-64 ] || build_foreign

rm -rf "$stage"; mkdir -p "$stage"
ln "$dest"/*.whl "$stage/" 2>/dev/null || cp "$dest"/*.whl "$stage/"
GK_IMAGE_CACHE="$cache" "$here/llama/wheel.sh" "$arch" "$stage" \
  || { echo "wheels: the llama-cpp-python wheel for $arch failed (see above; alone: make llama-wheel ARCH=$arch)" >&2; exit 1; }
# Build GK's wheel from a copy: an in-tree build would leave build/ in the work tree.
src=$(mktemp -d); trap 'rm -rf "$src"' EXIT
tar -C "$repo/appliance" --exclude=build --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$src" -xf -
"$py" -m pip wheel "${pip_quiet[@]}" --no-deps --wheel-dir "$stage" "$src" >/dev/null 2>&1 \
  || { echo "wheels: building GK's own wheel failed: run: $py -m pip wheel --no-deps appliance" >&2; exit 1; }
echo "wheels: $(ls "$stage" | wc -l) wheels for $arch in $stage"
