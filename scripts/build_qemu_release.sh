#!/usr/bin/env bash
# Build a minimal qemu-system-x86_64 of one QEMU release, for recording colo-compare's behaviour
# (tests/data/qemu-recordings/README.md; recipe: shared/reference/qemu-releases.md §9).
#
#   scripts/build_qemu_release.sh VERSION [WORKDIR]
#
# VERSION is a release tag without the "v" (e.g. 6.2.0).  WORKDIR (default /work/qemu-builds)
# receives src/VERSION, build/VERSION, bin/qemu-system-x86_64-VERSION and logs/VERSION.*.
# Sources come from git directories, not the network:
#   QEMU_GIT          a git dir with the release tags (default: the jasowang/qemu mirror)
#   QEMU_REF          what to archive (default: the tag vVERSION; e.g. a release commit of a
#                     mirror without tags: 10.2.0 = 698104725e in pbo-linaro/qemu-ci)
#   KEYCODEMAPDB_GIT  a git dir of qemu/keycodemapdb (the commit the tree pins is archived)
# Debian 12 packages: gcc make meson ninja-build pkg-config libglib2.0-dev libpixman-1-dev
#   libslirp-dev libfdt-dev flex bison python3-distlib python3-tomli.
# Meson releases (5.2+): configure + ninja; older ones: configure + make.  Configure gets the
# §9 options (plus --disable-debug-info: faster, same code), each only where that release's
# configure knows it.  Runs under nice -n 10, -j2.
set -euo pipefail

V=${1:?usage: build_qemu_release.sh VERSION [WORKDIR]}
W=${2:-/work/qemu-builds}
QEMU_GIT=${QEMU_GIT:-/work/.mirror/jasowang+qemu/repo}
REF=${QEMU_REF:-v$V}
KEYCODEMAPDB_GIT=${KEYCODEMAPDB_GIT:-/work/.mirror/qemu+keycodemapdb/repo}
JOBS=${JOBS:-2}
SRC=$W/src/$V
BLD=$W/build/$V
LOG=$W/logs/$V
mkdir -p "$W/src" "$W/build" "$W/bin" "$W/logs"
# Debian's python first (8.x's configure builds a venv and needs python3-distlib / tomli).
export PATH=/usr/bin:/bin:$PATH

t0=$(date +%s)
echo "source $QEMU_GIT $REF ($(git --git-dir="$QEMU_GIT" rev-parse "$REF^{commit}"))"
rm -rf "$SRC" "$BLD"
mkdir -p "$SRC" "$BLD"
git --git-dir="$QEMU_GIT" archive "$REF" | tar -x -C "$SRC"

# keycodemapdb (a submodule / subproject, absent from the archive): the pinned commit.
if [ -f "$SRC/subprojects/keycodemapdb.wrap" ]; then
    kc=$(sed -n 's/^revision *= *//p' "$SRC/subprojects/keycodemapdb.wrap")
    kdir=$SRC/subprojects/keycodemapdb
else
    kc=$(git --git-dir="$QEMU_GIT" ls-tree "$REF" ui/keycodemapdb | awk '{print $3}')
    kdir=$SRC/ui/keycodemapdb
fi
rm -rf "$kdir"; mkdir -p "$kdir"
git --git-dir="$KEYCODEMAPDB_GIT" archive "$kc" | tar -x -C "$kdir"
echo "keycodemapdb $kc -> ${kdir#$SRC/}"

# The softfloat test suites (tests/fp) are other submodules; they are only tests: leave them out.
if [ -f "$SRC/tests/meson.build" ]; then
    sed -i "s/^\( *\)subdir('fp')/\1# subdir('fp')  (build_qemu_release.sh: no softfloat tests offline)/" \
        "$SRC/tests/meson.build"
fi

# Options of §9 (plus --disable-debug-info: quicker, same code), each only if this release's
# configure (or its meson option table) knows it.
# "Knows" = a case label for it: "--opt)", or "--opt=*)" / "--opt=value)" for a valued one.
known() {
    local files=("$SRC/configure")
    [ -f "$SRC/scripts/meson-buildoptions.sh" ] && files+=("$SRC/scripts/meson-buildoptions.sh")
    grep -qF -- "$1)" "${files[@]}" && return 0
    [[ $1 == *=* ]] && grep -qF -- "${1%%=*}=*)" "${files[@]}"
}
OPTS=(--target-list=x86_64-softmmu)
for o in --without-default-features --enable-tcg --disable-docs --disable-werror --disable-tools \
         --enable-trace-backends=log --enable-slirp --enable-fdt=system --disable-capstone \
         --disable-download --enable-colo-proxy --disable-debug-info; do
    if known "$o"; then OPTS+=("$o"); fi
done
echo "configure ${OPTS[*]}" | tee "$LOG.configure-args"

cd "$BLD"
if ! nice -n 10 "$SRC/configure" "${OPTS[@]}" >"$LOG.configure.log" 2>&1; then
    echo "CONFIGURE FAILED ($V):"; grep -m5 -iE 'error|ERROR' "$LOG.configure.log" || tail -5 "$LOG.configure.log"
    exit 2
fi
if [ -f build.ninja ]; then
    target=qemu-system-x86_64
    nice -n 10 ninja -j"$JOBS" "$target" >"$LOG.build.log" 2>&1 || {
        echo "BUILD FAILED ($V):"; grep -m5 -E 'error|Error|FAILED' "$LOG.build.log"; exit 3; }
    out=$BLD/qemu-system-x86_64
else
    nice -n 10 make -j"$JOBS" x86_64-softmmu/all >"$LOG.build.log" 2>&1 || {
        echo "BUILD FAILED ($V):"; grep -m5 -E 'error|Error' "$LOG.build.log"; exit 3; }
    out=$BLD/x86_64-softmmu/qemu-system-x86_64
fi
cp "$out" "$W/bin/qemu-system-x86_64-$V"
t1=$(date +%s)
echo "built $V in $((t1 - t0)) s: $W/bin/qemu-system-x86_64-$V"
"$W/bin/qemu-system-x86_64-$V" --version | head -1
