#!/bin/bash
# CI entry point for the COLO rig: build the rig's QEMU and guest (reusing rig/.cache when it is warm), do one
# short recorded run into OUTDIR, check it, print the times. Exit status nonzero on any failure.
#
#   rig/ci.sh OUTDIR
# Environment: RIG_CACHE (default rig/.cache), RIG_PORT_BASE (default 9000), RIG_TRAFFIC, RIG_IDLE,
#              RIG_JOBS / RIG_NICE (build-qemu.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: rig/ci.sh OUTDIR}
TRAFFIC=${RIG_TRAFFIC:-det:20,clk:10,udp_det:10,udp_clk:5,udp_disk:5,idle:3}
IDLE=${RIG_IDLE:-5}
PORT_BASE=${RIG_PORT_BASE:-9000}
T0=$(date +%s)
step() { echo "[rig-ci $(date -u +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*"; }

# Runtime packages of a run (firmware for -L /usr/share/qemu -L /usr/share/seabios, qemu-img, tcpdump).
. "$HERE/lib.sh"
need_packages step "runtime deps" qemu-system-data seabios qemu-utils tcpdump python3

step "build-qemu"
QEMU=$("$HERE/build-qemu.sh" | tail -1)
T1=$(date +%s)
step "qemu: $QEMU ($(( T1 - T0 )) s)"
GUEST=$("$HERE/build-guest.sh" | tail -1)
T2=$(date +%s)
step "guest: $GUEST ($(( T2 - T1 )) s)"

rc=0
/usr/bin/python3 "$HERE/colo_rig.py" run --out "$OUT" --qemu "$QEMU" --guest "$GUEST" --accel tcg \
    --traffic "$TRAFFIC" --idle "$IDLE" --port-base "$PORT_BASE" || rc=$?
T3=$(date +%s)
step "run: rc=$rc ($(( T3 - T2 )) s)"

# Check what the run recorded, independently of its exit status.
/usr/bin/python3 - "$OUT" <<'PY' || rc=1
import json, sys, pathlib
d = pathlib.Path(sys.argv[1])
need = ["meta.json", "cmdlines.txt", "checkpoints.jsonl", "primary-trace.log", "secondary-trace.log",
        "lo-chardevs.pcap", "lo-client.pcap", "primary-hn0.pcap", "secondary-hn0.pcap", "qmp.jsonl",
        "events.jsonl", "traffic.jsonl", "summary.json"]
missing = [f for f in need if not (d / f).is_file() or (d / f).stat().st_size == 0]
if missing:
    sys.exit(f"rig-ci: missing or empty in {d}: {' '.join(missing)}")
s = json.loads((d / "summary.json").read_text())
bad = []
if s.get("error"):
    bad.append(f"error: {s['error']}")
if s.get("final_query_migrate_status") != "colo":
    bad.append(f"final status {s.get('final_query_migrate_status')!r}")
if not s.get("checkpoints"):
    bad.append("no checkpoints")
reqs = sum(p["requests"] for p in s["phases"]); ok = sum(p["ok"] for p in s["phases"])
print(f"rig-ci: checkpoints={s['checkpoints']} triggers={s['checkpoint_triggers']} requests={ok}/{reqs} "
      f"boot={s.get('boot_to_ready_s') and round(s['boot_to_ready_s'], 1)}s")
if ok != reqs:
    bad.append(f"{reqs - ok} requests failed")
# a capture with holes cannot be replayed: tcpdump must not have dropped a packet
import re
dropped = [int(n) for n in re.findall(r"(\d+) packets? dropped by kernel", (d / "tcpdump.err").read_text())]
if any(dropped):
    bad.append(f"tcpdump dropped {sum(dropped)} packets (tcpdump.err)")
if bad:
    sys.exit("rig-ci: " + "; ".join(bad))
PY
step "total $(( $(date +%s) - T0 )) s (qemu $(( T1 - T0 )) s, guest $(( T2 - T1 )) s, run $(( T3 - T2 )) s), rc=$rc"
exit $rc
