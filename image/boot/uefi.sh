#!/bin/bash
# Fill the FAT boot partition staging dir for UEFI: systemd-boot as the removable-media loader,
# one loader entry, the kernel and initrd under fixed names (the kernel hook in overlays keeps
# them current after unattended upgrades).
# usage: uefi.sh ROOT STAGE   (env from mkosi.profiles/<target>/target.env)
set -euo pipefail
root=$1; stage=$2
kver=$(ls "$root/lib/modules" | sort -V | tail -1)
efi="$root/usr/lib/systemd/boot/efi/$EFI_BINARY"
[ -f "$efi" ] || { echo "assemble: $efi missing: add systemd-boot-efi to the target's packages" >&2; exit 1; }
mkdir -p "$stage/EFI/BOOT" "$stage/loader/entries"
cp "$efi" "$stage/EFI/BOOT/$EFI_NAME"
cp "$root/boot/vmlinuz-$kver" "$stage/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$stage/initrd.img"
printf 'default gk.conf\ntimeout 0\nconsole-mode keep\neditor no\n' > "$stage/loader/loader.conf"
printf 'title GK\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' "$CMDLINE" > "$stage/loader/entries/gk.conf"
