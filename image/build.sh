#!/bin/bash
# `make image`: build gk-<version>-<target>.img.xz (+ .sha256, .bmap) for one target.
#
#   ARCH=x86-64|arm64   BOARD=generic|rpi4|rpi5 (a board names its own arch)   OUT=image/out
#   GK_IMAGE_CACHE=/var/cache/gk-image (apt packages, mkosi incremental tree, wheels)
#
# Steps: preflight (root, tools, space, binfmt) → wheels (cached per arch) → mkosi (directory
# root, incremental cache) → initrd check → assemble.sh (GPT/MBR disk without loop mounts) →
# xz, sha256, bmap. Every output is written under a .partial name and renamed when complete:
# a half-built image never carries the final name.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
ARCH=${ARCH:-x86-64}; BOARD=${BOARD:-generic}
# A target is a folder, mkosi.profiles/<target>/ (x86-64 and arm64 for BOARD=generic), whose
# mkosi.conf names its architecture: a new board is a new folder, nothing here.
if [ "$BOARD" != generic ]; then
  conf="$here/mkosi.profiles/$BOARD/mkosi.conf"
  case "$BOARD" in */*|.*|'') conf=/nonexistent ;; esac
  [ -f "$conf" ] || { echo "image: unknown BOARD=$BOARD (generic or one of: $(cd "$here/mkosi.profiles" && echo *))" >&2; exit 2; }
  ARCH=$(sed -n 's/^Architecture=//p' "$conf")
fi
case "$ARCH" in x86-64|x86_64|amd64) ARCH=x86-64 ;; arm64|aarch64) ARCH=arm64 ;; *) echo "image: unknown ARCH=$ARCH (x86-64, arm64)" >&2; exit 2 ;; esac
target=$ARCH; [ "$BOARD" = generic ] || target=$BOARD
OUT=${OUT:-$here/out}; CACHE=${GK_IMAGE_CACHE:-/var/cache/gk-image}
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/appliance/pyproject.toml" | head -1)
name="gk-$version-$target"
work="$CACHE/work/$target"
t0=$(date +%s)
step() { printf '\n==> [%4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
die() { printf 'image: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf 'image: fix: %s\n' "$2" >&2; exit 1; }

step "preflight for $name"
[ "$(id -u)" = 0 ] || die "building an image needs root (mkosi installs packages into a root tree)" "run as root: sudo make image"
need() { command -v "$1" >/dev/null || die "missing tool $1" "apt-get install $2  (or: make image-deps)"; }
need mkosi "-t bookworm-backports mkosi"; need mkfs.ext4 e2fsprogs; need mkfs.vfat dosfstools; need mcopy mtools
need sfdisk fdisk; need xz xz-utils; need bmaptool bmap-tools; need bwrap bubblewrap; need sha256sum coreutils
mkv=$(mkosi --version | awk '{print $2}'); [ "${mkv%%.*}" -ge 24 ] 2>/dev/null \
  || die "mkosi $mkv is too old (this config uses mkosi 24 syntax)" "add bookworm-backports to apt sources, then apt-get install -t bookworm-backports mkosi"
if [ "$ARCH" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  f=/proc/sys/fs/binfmt_misc/qemu-aarch64
  { [ -f "$f" ] && grep -q '^enabled' "$f" && grep -q 'flags:.*F' "$f"; } \
    || die "no binfmt handler for arm64 binaries on this $(uname -m) host" \
           "apt-get install qemu-user-static binfmt-support && mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && update-binfmts --enable qemu-aarch64"
fi
mkdir -p "$OUT" "$CACHE" "$work"
for d in "$OUT" "$CACHE"; do
  avail=$(df -Pk "$d" | awk 'NR==2{print $4}')
  [ "$avail" -ge $((6 * 1024 * 1024)) ] || die "only $((avail / 1024)) MB free in $d; a build needs 6 GB" "free space there or set OUT= / GK_IMAGE_CACHE= to a larger disk"
done

step "wheels for $ARCH (cached in $CACHE/wheels)"
"$here/wheels.sh" "$ARCH" "$CACHE" "$work/wheels"

step "root file system with mkosi $mkv (packages cached; first run downloads ~300 MB)"
rm -rf "$work/mkosi.output"; mkdir -p "$work/mkosi.output" "$CACHE/mkosi-cache/$target" "$CACHE/mkosi-pkgcache"
(cd "$here" && exec nice -n "${GK_NICE:-10}" mkosi --force --incremental --architecture "$ARCH" --profile "$target" \
    --output-dir "$work/mkosi.output" --cache-dir "$CACHE/mkosi-cache/$target" --package-cache-dir "$CACHE/mkosi-pkgcache" \
    --build-sources "$work/wheels:wheels" --image-version "$version" build) > "$work/mkosi.log" 2>&1 &
mk=$!
# Progress: mkosi's step lines, GK's postinst lines and every 50th package line.
tail -n +1 --pid=$mk -f "$work/mkosi.log" | awk '/^‣|^gk postinst|^E: /{print; fflush(); next}
  /^(Unpacking|Setting up) /{ if (++n % 50 == 0) { print "   … " n " packages: " $0; fflush() } }' || true
st=0; wait $mk || st=$?
root="$work/mkosi.output/gk_$version"; [ -d "$root" ] || root=$(find "$work/mkosi.output" -mindepth 1 -maxdepth 1 -type d | head -1)
if [ "$st" != 0 ] || [ ! -d "$root/usr" ]; then
  if grep -qE 'Failed to fetch|Unable to fetch|Temporary failure resolving|Could not resolve' "$work/mkosi.log"; then
    die "a package download failed (see $work/mkosi.log)" "check the network / Debian mirror and run make image again (downloaded packages are kept)"
  fi
  grep -q 'No space left' "$work/mkosi.log" && die "disk full during the mkosi build" "free space in $CACHE or set GK_IMAGE_CACHE"
  die "mkosi failed (exit $st); the last lines of $work/mkosi.log say why" "see: tail -50 $work/mkosi.log"
fi

step "kernel and initrd"
# An empty machine id: every flashed card gets its own at first boot (systemd first-boot semantics).
: > "$root/etc/machine-id"; rm -f "$root/var/lib/dbus/machine-id"
kver=$(ls "$root/lib/modules" | sort -V | tail -1)
[ -f "$root/boot/vmlinuz-$kver" ] || die "no kernel in the root tree" "check the linux-image package in image/mkosi.profiles/$target/mkosi.conf"
if [ ! -f "$root/boot/initrd.img-$kver" ]; then
  echo "   mkinitramfs $kver in a chroot"
  chroot "$root" mkinitramfs -o "/boot/initrd.img-$kver" "$kver"
fi

step "assembling the disk (no loop mounts)"
"$here/assemble.sh" "$root" "$target" "$OUT/$name.img"

step "compressing, checksum, bmap"
rm -f "$OUT/$name.img.xz.partial"
nice -n "${GK_NICE:-10}" xz -T0 -6 -c "$OUT/$name.img" > "$OUT/$name.img.xz.partial"
bmaptool -q create -o "$OUT/$name.bmap.partial" "$OUT/$name.img"
mv "$OUT/$name.bmap.partial" "$OUT/$name.bmap"
mv "$OUT/$name.img.xz.partial" "$OUT/$name.img.xz"
(cd "$OUT" && sha256sum "$name.img.xz" > "$name.img.xz.sha256.partial" && mv "$name.img.xz.sha256.partial" "$name.img.xz.sha256")
raw=$(du -m --apparent-size "$OUT/$name.img" | cut -f1); xzs=$(du -m "$OUT/$name.img.xz" | cut -f1)
step "done: $OUT/$name.img.xz — ${xzs} MB compressed, ${raw} MB raw, root $(du -sm "$root" | cut -f1) MB, GK $(du -sm "$root/opt/gk" | cut -f1) MB"
