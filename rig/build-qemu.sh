#!/bin/bash
# Build the rig's QEMU: Debian's own qemu source package (Debian's patches applied by dpkg-source -x),
# plus rig/patches/colo-tcg.patch (COLO under TCG: BQL + dirty-tracking fixes, see rig/README.md).
#
# Output: $RIG_CACHE/qemu-<debian-version>-<patch-hash>/qemu-system-x86_64  (RIG_CACHE defaults to rig/.cache)
# A rerun with the same Debian version and patch reuses the cached binary and only prints its path.
# The last line of stdout is always the path of the binary.
#
# Options (environment): RIG_CACHE=dir  RIG_JOBS=2  RIG_NICE=10  RIG_NO_APT=1 (never call apt-get)
#                        RIG_QEMU_VERSION=<Debian source version> (default: the newest apt knows)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${RIG_CACHE:-$HERE/.cache}
JOBS=${RIG_JOBS:-2}
NICE=${RIG_NICE:-10}
PATCH=$HERE/patches/colo-tcg.patch
# Debian's meson and python only: no venvs or other Pythons on PATH (QEMU 7.2's configure picks them up).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH VIRTUAL_ENV || true

log() { echo "[build-qemu $(date -u +%H:%M:%S)] $*" >&2; }
. "$HERE/lib.sh"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

# Packages the build needs. Installed with apt-get only when missing.
DEPS="dpkg-dev build-essential pkg-config meson ninja-build python3 libglib2.0-dev libpixman-1-dev
      libslirp-dev zlib1g-dev libfdt-dev flex bison"

ensure_deps() {
    # shellcheck disable=SC2086  # (the list, split into packages)
    need_packages log "build deps" $DEPS || exit 1
}

have_deb_src() {
    grep -rqsE '^\s*deb-src\s.*bookworm|^Types:.*deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/ &&
        apt-cache showsrc qemu >/dev/null 2>&1 && [ -n "$(apt-cache showsrc qemu 2>/dev/null)" ]
}

ensure_deb_src() {
    if have_deb_src; then return; fi
    [ -n "${RIG_NO_APT:-}" ] && { log "no deb-src entry for qemu (RIG_NO_APT set)"; exit 1; }
    log "adding /etc/apt/sources.list.d/colo-rig-deb-src.sources (bookworm, bookworm-security)"
    $SUDO tee /etc/apt/sources.list.d/colo-rig-deb-src.sources >/dev/null <<'SRC'
# Added by colo-replay rig/build-qemu.sh: source packages, for `apt-get source qemu`.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO apt-get update >&2
}

T0=$(date +%s)
ensure_deb_src
# Highest source version apt knows about.
# (RIG_QEMU_VERSION pins one, e.g. 1:7.2+dfsg-7+deb12u18; the archive keeps only the newest security update.)
VER=${RIG_QEMU_VERSION:-$(apt-cache showsrc qemu | sed -n 's/^Version: //p' | sort -V | tail -1)}
[ -n "$VER" ] || { log "apt-cache showsrc qemu gave no version"; exit 1; }
PHASH=$(sha256sum "$PATCH" | cut -c1-12)
KEY="$(echo "$VER" | tr ':~+' '___')-$PHASH"
OUT=$CACHE/qemu-$KEY
BIN=$OUT/qemu-system-x86_64
if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
    log "cached: $BIN (Debian qemu $VER, patch $PHASH)"
    echo "$BIN"
    exit 0
fi

ensure_deps
mkdir -p "$CACHE/dl"
if ! ls "$CACHE/dl"/qemu_"${VER#*:}".dsc >/dev/null 2>&1; then
    log "apt-get source --download-only qemu=$VER"
    (cd "$CACHE/dl" && apt-get source --download-only "qemu=$VER" >&2)
fi
WORK=$CACHE/work-$KEY
rm -rf "$WORK"
mkdir -p "$WORK"
log "dpkg-source -x (applies Debian's patches)"
dpkg-source -x "$CACHE/dl/qemu_${VER#*:}.dsc" "$WORK/src" >&2
log "applying $PATCH"
patch -d "$WORK/src" -p1 --forward --batch < "$PATCH" >&2
mkdir -p "$WORK/build"
cd "$WORK/build"
log "configure"
nice -n "$NICE" ../src/configure --target-list=x86_64-softmmu --without-default-features --enable-tcg \
    --enable-slirp --enable-replication --enable-trace-backends=log --disable-docs --disable-tools \
    --meson=/usr/bin/meson >&2
log "build -j$JOBS under nice $NICE"
nice -n "$NICE" ninja -j "$JOBS" qemu-system-x86_64 >&2
mkdir -p "$OUT.tmp"
cp qemu-system-x86_64 "$OUT.tmp/"
cp "$PATCH" "$OUT.tmp/colo-tcg.patch"
cat > "$OUT.tmp/build-info.json" <<INFO
{"debian_version": "$VER", "patch_sha256_12": "$PHASH", "built_utc": "$(date -u +%FT%TZ)",
 "build_seconds": $(( $(date +%s) - T0 )), "jobs": $JOBS}
INFO
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
rm -rf "$WORK"
log "built $OUT/qemu-system-x86_64 in $(( $(date +%s) - T0 )) s"
echo "$OUT/qemu-system-x86_64"
