#!/bin/bash
# Build the rig's guest: Debian's generic amd64 kernel (downloaded and unpacked, not installed; the -cloud
# kernel has no e1000) and an initramfs of busybox-static, the e1000/virtio-blk modules and rig/guest/guestsrv.c
# (gcc -static).
#
# Output: $RIG_CACHE/guest-<kernel-version>-<hash>/{vmlinuz,initrd.gz}  (RIG_CACHE defaults to rig/.cache)
# Reused when the kernel package, busybox and rig/guest/* are unchanged. Last stdout line: the output dir.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${RIG_CACHE:-$HERE/.cache}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
log() { echo "[build-guest $(date -u +%H:%M:%S)] $*" >&2; }
. "$HERE/lib.sh"

DEPS="gcc libc6-dev cpio gzip dpkg xz-utils"
need_packages log "build deps" $DEPS

T0=$(date +%s)
# The generic kernel the linux-image-amd64 metapackage points at (override: RIG_KERNEL_PKG).
KPKG=${RIG_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1)}
[ -n "$KPKG" ] || { log "cannot resolve linux-image-amd64"; exit 1; }
case "$KPKG" in *cloud*) log "$KPKG is a -cloud kernel (no e1000)"; exit 1;; esac
KVER_PKG=$(apt-cache policy "$KPKG" | sed -n 's/^ *Candidate: //p')
BBVER=$(apt-cache policy busybox-static | sed -n 's/^ *Candidate: //p')
GHASH=$(cat "$HERE/guest/guestsrv.c" "$HERE/guest/init" "$0" | sha256sum | cut -c1-12)
KEY="${KPKG#linux-image-}-$(echo "$KVER_PKG-$BBVER" | sha256sum | cut -c1-6)-$GHASH"
OUT=$CACHE/guest-$KEY
if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.gz" ]; then
    log "cached: $OUT"; echo "$OUT"; exit 0
fi

W=$CACHE/guest-work-$KEY
rm -rf "$W"; mkdir -p "$W/dl" "$W/k" "$W/bb" "$W/root"
log "apt-get download $KPKG busybox-static"
(cd "$W/dl" && apt-get download "$KPKG" busybox-static >&2)
dpkg-deb -x "$W/dl/$KPKG"_*.deb "$W/k"
dpkg-deb -x "$W"/dl/busybox-static_*.deb "$W/bb"
KREL=$(ls "$W/k/lib/modules" | head -1)
R=$W/root
mkdir -p "$R"/{bin,proc,sys,dev,tmp,lib/modules}
cp "$W/bb/bin/busybox" "$R/bin/busybox"
log "gcc -static guestsrv"
gcc -static -O2 -Wall -o "$R/bin/guestsrv" "$HERE/guest/guestsrv.c"
install -m 0755 "$HERE/guest/init" "$R/init"

# Modules: e1000 and virtio-blk plus their dependencies, in load order. The .deb has no modules.dep (depmod
# makes it at install time), so read each module's own "depends=" from its .modinfo section.
MD=$W/k/lib/modules/$KREL
declare -A seen=()
order=()
mod_path() {  # module name -> path under $MD ('-' and '_' are the same in module names)
    local n=${1//-/_}
    find "$MD/kernel" -name "$n.ko*" -o -name "${1//_/-}.ko*" | head -1
}
mod_depends() {  # path -> its dependencies, space separated (decompressing if needed)
    case "$1" in
        *.xz) xz -dc "$1";; *.zst) zstd -qdc "$1";; *) cat "$1";;
    esac | grep -a -o 'depends=[^[:cntrl:]]*' | head -1 | sed 's/^depends=//; s/,/ /g'
}
add_mod() {   # $1 = module name
    local n=${1//-/_} p d
    [ -n "${seen[$n]:-}" ] && return 0; seen[$n]=1
    p=$(mod_path "$n")
    if [ -z "$p" ]; then log "$n: no module file (built in?)"; return 0; fi
    for d in $(mod_depends "$p"); do add_mod "$d"; done
    order+=("${p#$MD/}")
}
for name in e1000 virtio_pci virtio_blk; do add_mod "$name"; done
: > "$R/modules.order"
for m in "${order[@]}"; do
    b=$(basename "$m")
    case "$b" in
        *.xz) xz -dc "$MD/$m" > "$R/lib/modules/${b%.xz}"; b=${b%.xz};;
        *.zst) zstd -qdc "$MD/$m" > "$R/lib/modules/${b%.zst}"; b=${b%.zst};;
        *) cp "$MD/$m" "$R/lib/modules/$b";;
    esac
    echo "$b" >> "$R/modules.order"
done
log "modules: $(tr '\n' ' ' < "$R/modules.order")"

mkdir -p "$OUT.tmp"
cp "$W/k/boot/vmlinuz-$KREL" "$OUT.tmp/vmlinuz"
(cd "$R" && find . -print0 | sort -z | cpio --null -o -H newc --quiet | gzip -9n) > "$OUT.tmp/initrd.gz"
cat > "$OUT.tmp/build-info.json" <<INFO
{"kernel_package": "$KPKG", "kernel_package_version": "$KVER_PKG", "kernel_release": "$KREL",
 "busybox_static": "$BBVER", "modules": "$(tr '\n' ' ' < "$R/modules.order")", "built_utc": "$(date -u +%FT%TZ)",
 "build_seconds": $(( $(date +%s) - T0 ))}
INFO
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"; rm -rf "$W"
log "built $OUT in $(( $(date +%s) - T0 )) s"
echo "$OUT"
