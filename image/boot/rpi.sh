#!/bin/bash
# Fill the FAT boot partition for a Raspberry Pi: raspi-firmware's blobs, the board's DTBs and
# overlays, kernel + initrd, and config.txt / cmdline.txt from overlays/<board>/boot-firmware/.
# usage: rpi.sh ROOT STAGE   (env from targets/<board>.env)
set -euo pipefail
root=$1; stage=$2; repo=$(cd "$(dirname "$0")/../.." && pwd)
kver=$(ls "$root/lib/modules" | sort -V | tail -1)
fw="$root/usr/lib/raspi-firmware"
[ -d "$fw" ] || { echo "assemble: $fw missing: raspi-firmware (non-free-firmware) not installed" >&2; exit 1; }
cp -r "$fw"/. "$stage/"
dtbs="$root/usr/lib/linux-image-$kver/broadcom"
cp "$dtbs"/bcm27*.dtb "$stage/" 2>/dev/null || echo "assemble: warning: no bcm27xx DTBs in $dtbs" >&2
[ -d "$dtbs/../overlays" ] && cp -r "$dtbs/../overlays" "$stage/" || true
mkdir -p "$stage/overlays"
command -v dtc >/dev/null || { echo "assemble: dtc missing: apt-get install device-tree-compiler" >&2; exit 1; }
dtc -q -@ -I dts -O dtb -o "$stage/overlays/gk-button.dtbo" "$repo/overlays/rpi/boot-firmware/gk-button.dts"
cp "$root/boot/vmlinuz-$kver" "$stage/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$stage/initrd.img"
cp "$repo/overlays/$BOARD_DIR/boot-firmware/config.txt" "$repo/overlays/$BOARD_DIR/boot-firmware/cmdline.txt" "$stage/"
