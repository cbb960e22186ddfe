#!/bin/bash
# Boot a built image in QEMU (TCG) for a look: serial console on this terminal, GK's ports
# forwarded to 127.0.0.1 (HTTP 8080, SMTP 2525/2587, IMAP 2143/2993). Works on a copy.
#   usage: image/qemu-boot.sh image/out/gk-<version>-<x86-64|arm64>.img [disk GB, default 4]
set -euo pipefail
img=${1:?image}; gb=${2:-4}
work=$(mktemp -d /var/tmp/gk-qemu.XXXXXX); trap 'rm -rf "$work"' EXIT
cp --sparse=always "$img" "$work/disk.img"; truncate -s "${gb}G" "$work/disk.img"
fwd="hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2525-:25,hostfwd=tcp:127.0.0.1:2587-:587"
fwd="$fwd,hostfwd=tcp:127.0.0.1:2143-:143,hostfwd=tcp:127.0.0.1:2993-:993"
case "$img" in
  *arm64*|*aarch64*)
    cp /usr/share/AAVMF/AAVMF_VARS.fd "$work/vars.fd"
    qemu-system-aarch64 -M virt -cpu cortex-a72 -accel tcg -m 1024 -nographic \
      -drive if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd \
      -drive if=pflash,format=raw,file="$work/vars.fd" \
      -drive file="$work/disk.img",format=raw,if=virtio -netdev user,id=n0,"$fwd" -device virtio-net-pci,netdev=n0 ;;
  *)
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
    qemu-system-x86_64 -machine q35 -accel tcg -m 1024 -nographic \
      -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
      -drive if=pflash,format=raw,file="$work/vars.fd" \
      -drive file="$work/disk.img",format=raw,if=virtio -netdev user,id=n0,"$fwd" -device virtio-net-pci,netdev=n0 ;;
esac
