#!/usr/bin/env bash
# Make sample_pcaps/primary.pcap and sample_pcaps/secondary.pcap: the outbound traffic of two
# identical "guests" (same IP, same MAC, same software, same input at the same instants), each in
# its own network namespace, as a COLO primary/secondary pair would produce it.
#
#   sudo bash sample_pcaps/make_pair.sh            (needs root: namespaces, raw ICMP, tcpdump)
#
# Topology (four namespaces created here and deleted on exit; nothing touches the root namespace
# or any real interface):
#
#   colo-cli-pri [eth0 10.200.0.1+.3 52:54:00:00:00:01] <-veth-> [eth0 10.200.0.2 52:54:00:12:34:56] colo-pri
#   colo-cli-sec [eth0 10.200.0.1+.3 52:54:00:00:00:01] <-veth-> [eth0 10.200.0.2 52:54:00:12:34:56] colo-sec
#
# Each guest runs pair_server.py (http.server on TCP 80, DNS-like UDP 53, echo UDP 7, stat UDP
# 7777; ICMP echo from the kernel). tcpdump -Q out on the guest's eth0 records what the guest sends.
# Two pair_client.py processes, one per client namespace, replay the same schedule from the same
# absolute start time. Environment: PYTHON (default python3), OUT_DIR (default: this folder).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="${OUT_DIR:-$HERE}"
PY="${PYTHON:-python3}"
NS_GUESTS=(colo-pri colo-sec)
declare -A CLIENT_OF=([colo-pri]=colo-cli-pri [colo-sec]=colo-cli-sec)
declare -A PCAP_OF=([colo-pri]=primary.pcap [colo-sec]=secondary.pcap)
GUEST_IP=10.200.0.2 GUEST_MAC=52:54:00:12:34:56
CLIENT_IP=10.200.0.1 CLIENT_IP2=10.200.0.3 CLIENT_MAC=52:54:00:00:00:01

if [[ $(id -u) -ne 0 ]]; then echo "make_pair.sh: run as root (sudo bash $0)" >&2; exit 1; fi
for tool in ip tcpdump ethtool "$PY"; do
    command -v "$tool" >/dev/null || { echo "make_pair.sh: missing $tool" >&2; exit 1; }
done
for ns in colo-pri colo-sec colo-cli-pri colo-cli-sec; do
    if ip netns list | grep -qw "^$ns"; then
        echo "make_pair.sh: namespace $ns already exists; remove it first (ip netns del $ns)" >&2; exit 1
    fi
done

WORK="$(mktemp -d /tmp/colo-pair.XXXXXX)"
CREATED_NS=()
PIDS=()
TCPDUMP_PID=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${CREATED_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT INT TERM

# ---- namespaces and veths -------------------------------------------------------------------
for g in "${NS_GUESTS[@]}"; do
    c=${CLIENT_OF[$g]}
    for ns in "$g" "$c"; do
        ip netns add "$ns"
        CREATED_NS+=("$ns")
        # No IPv6 (no random-timed MLD / router solicitations / DAD in the captures).
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    ip link add eth0 netns "$g" type veth peer name eth0 netns "$c"
    ip -n "$g" link set eth0 address $GUEST_MAC mtu 1500
    ip -n "$c" link set eth0 address $CLIENT_MAC mtu 1500
    # Wire-sized frames with real checksums, as a NIC would put on the wire: no TSO/GSO super-frames,
    # no partial (offloaded) checksums in the capture.
    for ns in "$g" "$c"; do ip netns exec "$ns" ethtool -K eth0 tx off tso off gso off gro off >/dev/null; done
    ip -n "$g" addr add $GUEST_IP/24 dev eth0
    ip -n "$c" addr add $CLIENT_IP/24 dev eth0
    ip -n "$c" addr add $CLIENT_IP2/24 dev eth0   # a second client address, used once (guest ARPs for it)
    ip -n "$g" link set eth0 up
    ip -n "$c" link set eth0 up
done

# ---- identical guests -------------------------------------------------------------------------
"$PY" "$HERE/pair_server.py" --make-docroot "$WORK/www"
chmod 755 "$WORK"
for g in "${NS_GUESTS[@]}"; do
    ip netns exec "$g" "$PY" "$HERE/pair_server.py" --docroot "$WORK/www" --ready-file "$WORK/$g.ready" \
        2>"$WORK/$g.server.log" &
    PIDS+=($!)
done
for g in "${NS_GUESTS[@]}"; do
    for _ in $(seq 100); do [[ -s "$WORK/$g.ready" ]] && break; sleep 0.05; done
    [[ -s "$WORK/$g.ready" ]] || { echo "server in $g did not start:"; cat "$WORK/$g.server.log"; exit 1; }
done

# ---- capture the guests' outbound traffic ---------------------------------------------------
for g in "${NS_GUESTS[@]}"; do
    ip netns exec "$g" tcpdump -i eth0 -Q out -s 0 -U -Z root -w "$WORK/${PCAP_OF[$g]}" 2>"$WORK/$g.tcpdump.log" &
    PIDS+=($!)
    TCPDUMP_PID+=($!)
done
for g in "${NS_GUESTS[@]}"; do
    for _ in $(seq 100); do grep -q "listening on" "$WORK/$g.tcpdump.log" && break; sleep 0.05; done
    grep -q "listening on" "$WORK/$g.tcpdump.log" || { echo "tcpdump in $g not ready:"; cat "$WORK/$g.tcpdump.log"; exit 1; }
done

# ---- the same client schedule against both guests, from the same start instant ------------
START_AT=$("$PY" -c 'import time; print("%.6f" % (time.time() + 1.0))')
echo "client start at $START_AT ($(date -u -d @"${START_AT%.*}" +%FT%TZ))"
CLIENT_PIDS=()
for g in "${NS_GUESTS[@]}"; do
    ip netns exec "${CLIENT_OF[$g]}" "$PY" "$HERE/pair_client.py" --start-at "$START_AT" 2>"$WORK/$g.client.log" &
    CLIENT_PIDS+=($!)
done
rc=0
for pid in "${CLIENT_PIDS[@]}"; do wait "$pid" || rc=1; done
for g in "${NS_GUESTS[@]}"; do echo "== client log ($g)"; cat "$WORK/$g.client.log"; done
[[ $rc -eq 0 ]] || { echo "a client failed" >&2; exit 1; }

sleep 1.0   # let the last FIN/ACK exchanges finish
for pid in "${TCPDUMP_PID[@]}"; do kill -INT "$pid"; done
for pid in "${TCPDUMP_PID[@]}"; do wait "$pid" || true; done
for g in "${NS_GUESTS[@]}"; do echo "== tcpdump ($g)"; cat "$WORK/$g.tcpdump.log"; done

mkdir -p "$OUT_DIR"
for g in "${NS_GUESTS[@]}"; do cp "$WORK/${PCAP_OF[$g]}" "$OUT_DIR/${PCAP_OF[$g]}"; done
echo "== summary"
"$PY" "$HERE/describe_pair.py" "$OUT_DIR/primary.pcap" "$OUT_DIR/secondary.pcap"
ls -l "$OUT_DIR/primary.pcap" "$OUT_DIR/secondary.pcap"
