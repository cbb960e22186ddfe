#!/bin/bash
# Assemble a bootable disk image from a root directory WITHOUT loop mounts (this kernel has no
# vfat; mounting needs privileges CI may lack): the boot partition is made with mkfs.vfat +
# mtools, the root with `mkfs.ext4 -d`, the partition table with sfdisk, and dd lays both in.
# The image is written as OUT.partial and renamed only when complete.
#
# usage: assemble.sh ROOT_DIR TARGET OUT.img   (TARGET: a folder in image/mkosi.profiles/)
# Layout: p1 FAT32 "GK-BOOT" 256 MiB (GPT ESP or MBR type 0c), p2 ext4 "gk-root" sized to the
# root tree + 25 % + 256 MiB; first boot grows p2 to the card.
set -euo pipefail
root=$1; target=$2; out=$3
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1090
. "$here/mkosi.profiles/$target/target.env"
export EFI_BINARY EFI_NAME CMDLINE 2>/dev/null || true
tmp=$(mktemp -d "$(dirname "$out")/.assemble.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
boot_mib=256

# Boot partition: staged as files, then copied into a FAT image with mtools.
mkdir -p "$tmp/boot"
"$here/boot/$BOOT.sh" "$root" "$tmp/boot"
printf 'GK boot partition. After the first start GK-SETUP.txt here holds the setup code.\r\n' > "$tmp/boot/README.txt"
mkfs.vfat -F 32 -n GK-BOOT -i "$(printf '%08X' $((RANDOM * 65536 + RANDOM)))" -C "$tmp/boot.img" $((boot_mib * 1024)) >/dev/null
mcopy -s -Q -i "$tmp/boot.img" "$tmp/boot"/* ::

# Root partition: the kernel/initrd stay in /boot too; the boot partition mounts at /boot/efi (or /boot/firmware).
used_mib=$(du -sm --apparent-size "$root" | cut -f1)
root_mib=$(( used_mib * 125 / 100 + 256 ))
echo "   root tree ${used_mib} MiB -> ext4 partition ${root_mib} MiB"
mkfs.ext4 -q -F -L gk-root -d "$root" -O ^orphan_file -E lazy_itable_init=0,lazy_journal_init=0 \
    -b 4096 "$tmp/root.img" "${root_mib}M"

total_mib=$(( 1 + boot_mib + root_mib + 1 ))
rm -f "$out.partial"; truncate -s "${total_mib}M" "$out.partial"
if [ "$PTABLE" = gpt ]; then
  sfdisk -q "$out.partial" <<SF
label: gpt
start=1MiB, size=${boot_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="GK-BOOT"
start=$((1 + boot_mib))MiB, size=${root_mib}MiB, type=$ROOT_TYPE, name="gk-root"
SF
else
  sfdisk -q "$out.partial" <<SF
label: dos
start=1MiB, size=${boot_mib}MiB, type=c, bootable
start=$((1 + boot_mib))MiB, size=${root_mib}MiB, type=83
SF
fi
dd if="$tmp/boot.img" of="$out.partial" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$tmp/root.img" of="$out.partial" bs=1M seek=$((1 + boot_mib)) conv=notrunc,sparse status=none
sync -f "$out.partial" 2>/dev/null || sync
mv "$out.partial" "$out"
echo "   $out: $(du -m --apparent-size "$out" | cut -f1) MiB ($PTABLE, boot ${boot_mib} MiB, root ${root_mib} MiB)"
