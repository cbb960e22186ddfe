#!/bin/bash
# Fill the FAT boot partition for a Raspberry Pi from what raspi-firmware's kernel hook put in
# ROOT/boot/firmware during the build (firmware blobs, DTBs, kernel, initrd, config.txt and
# cmdline.txt generated from overlays/rpi*/root/etc/default/raspi-*), plus GK's button overlay.
# The same hook keeps the partition current after kernel updates on the board.
# usage: rpi.sh ROOT STAGE   (env from mkosi.profiles/<board>/target.env)
set -euo pipefail
root=$1; stage=$2; repo=$(cd "$(dirname "$0")/../.." && pwd)
fw="$root/boot/firmware"
[ -f "$fw/config.txt" ] && [ -f "$fw/cmdline.txt" ] \
  || { echo "assemble: $fw has no config.txt/cmdline.txt: raspi-firmware (non-free-firmware) not installed or its hook failed" >&2; exit 1; }
cp -r "$fw"/. "$stage/"
rm -f "$stage/.keep"
command -v dtc >/dev/null || { echo "assemble: dtc missing: apt-get install device-tree-compiler" >&2; exit 1; }
mkdir -p "$stage/overlays"
dtc -q -@ -I dts -O dtb -o "$stage/overlays/gk-button.dtbo" "$repo/overlays/rpi/boot-firmware/gk-button.dts"
grep -q "root=LABEL=gk-root" "$stage/cmdline.txt" || { echo "assemble: cmdline.txt lacks root=LABEL=gk-root: $(cat "$stage/cmdline.txt")" >&2; exit 1; }
