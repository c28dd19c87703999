"""The well-known divergence classes and what to do about them: data, not code.

``FIELD_HINTS`` maps a field name (Wireshark display-filter naming, as ``fields`` and
``appfields`` produce) to a short actionable sentence; ``PREFIX_HINTS`` catches a protocol's
fields by prefix; ``CAUSE_HINTS`` covers the checkpoint causes that have no differing byte;
``PROTOCOL_HINTS`` is the fallback for a payload nobody recognised.  ``classes.hint_for``
looks them up in that order.  Edit the sentences here; nothing else encodes them.

What colo-compare compares (spec 2.4/2.5) decides which hints can apply: TCP compares payload
only, so IP ID, TCP window and TCP options never cause a TCP miscompare on their own (they do
for "other" protocols, whose whole frame is compared, and in a 4.1 replay with a vnet header,
whose TCP window starts in the TCP header's tail).
"""

from __future__ import annotations

FIELD_HINTS: dict[str, str] = {
    "compare-order":
        "Not a divergence in the guest: the primary's frame has an identical copy on the secondary "
        "that colo-compare did not pair with it (datagrams: 7.0+ compares the newest waiting primary "
        "first, a5f038e2c5; TCP: segments are paired by queue position). Look at the flow's rate "
        "against the secondary's lag, not at the guest's data.",
    "segmentation-residue":
        "Not a divergence in the guest: the two VMs cut a TCP stream into different segments, and "
        "colo-compare, which pairs segments by queue position, left one without a partner until "
        "compare_timeout. Turn segmentation offloads off in both guests (ethtool -K eth0 tso off gso "
        "off), as the COLO setup notes advise, so that both VMs send the same segments.",
    "table-reset":
        "Not a divergence in the guest: more than 16,384 connections were tracked, so colo-compare "
        "cleared its connection table (connection_get, HASHTABLE_MAX_SIZE) and dropped every queued "
        "frame (QEMU 7.1+; earlier releases abort). colo-compare never forgets a connection, so a "
        "long-running pair meets this every 16,385 new connections: expect a checkpoint or two then; "
        "fewer, longer-lived connections (keep-alive, pooling) make it rarer.",
    "inverted-tcp-test":
        "Not a divergence: QEMU 4.1's TCP payload test is inverted (spec Q1), so identical TCP data "
        "requests a checkpoint; 4.1.1 and 4.2 on have the fix (1e907a32b7): upgrade, or expect a "
        "checkpoint per TCP segment.",
    "padded-syn-ack":
        "Not the guests' data: the secondary's SYN+ACK was padded to 60 bytes by the guest's NIC driver "
        "(e1000's Linux driver pads short frames) and colo-compare counts padding as TCP payload (every "
        "release), so it lingers and meets the primary's next segment: one checkpoint per new connection. "
        "Give the guests a NIC whose driver does not pad (virtio-net), or budget one checkpoint per "
        "connection.",
    "rewriter-handshake-reset":
        "Not the guests' data: a checkpoint during the TCP handshake made QEMU's filter-rewriter lose the "
        "secondary's ISN (reset_seq_offset, 4.1.0 .. 10.2.0), so the secondary reset the connection (RST seq "
        "1); it costs one more checkpoint and the connection carries on from the primary. Fewer checkpoints "
        "mid-handshake (a longer x-checkpoint-delay) make it rarer.",
    "tcp.options.timestamp.tsval":
        "Each guest's TCP timestamp clock differs; colo-compare ignores TCP options, so this only "
        "shows up where the whole frame is compared: disable tcp_timestamps in the guests or keep "
        "such traffic on TCP.",
    "tcp.options.timestamp.tsecr":
        "The echoed TCP timestamp differs because each guest's timestamp clock does; disable "
        "tcp_timestamps in the guests if whole frames are compared.",
    "ip.id":
        "The guests pick IP IDs independently; only protocols compared as whole frames (not "
        "TCP/UDP/ICMP) see it: make the IP ID deterministic or avoid such protocols.",
    "tcp.window_size_value":
        "The guests advertise different TCP windows (memory pressure, autotuning); colo-compare "
        "ignores the window for TCP payload compares: look at the vnet header setting or profile.",
    "dns.id":
        "The DNS transaction ID is random per query: a resolver inside the guest diverges on "
        "every query; use a fixed forwarder outside the VM or accept one checkpoint per lookup.",
    "ntp.xmt":
        "NTP transmit timestamps come from each guest's clock: keep NTP serving out of the "
        "protected VM, or expect one checkpoint per reply.",
    "ntp.rec":
        "NTP receive timestamps come from each guest's clock: keep NTP serving out of the "
        "protected VM, or expect one checkpoint per reply.",
    "ntp.org":
        "The NTP origin timestamp echoes each guest's view of time: keep NTP out of the protected "
        "VM.",
    "http.date":
        "The HTTP Date header differs when the two guests answer in different seconds: expect it "
        "at second boundaries; a response cache or a proxy that sets Date outside the VM avoids it.",
    "tls.handshake.random":
        "TLS randoms differ by design, so every TLS handshake diverges: terminate TLS outside the "
        "protected VM (a proxy in front of it) if checkpoints per connection are too costly.",
    "tls.handshake.session_id":
        "The TLS session ID is random per handshake (a server's new session, or a client's resumption "
        "ticket): every TLS connection diverges at its ServerHello; terminate TLS outside the protected "
        "VM, and count the connection's later records as consequences, not new causes.",
    "ssh.cookie":
        "The SSH key-exchange cookie is 16 random bytes per connection: every SSH session diverges "
        "at KEXINIT, and its encrypted packets after it differ as a consequence; expect one "
        "checkpoint per SSH connection, or reach the VM through a jump host outside it.",
    "http.set_cookie":
        "The session cookie the server sets is random per client (a session id): make it derive from "
        "the request, or keep session state out of the protected VM.",
    "http.last_modified":
        "Last-Modified comes from each guest's file times: give both VMs the same files with the same "
        "mtimes (one image, no rewrites at boot).",
    "icmp.ident":
        "ICMP echo identifiers are chosen per process in each guest: pings sent by the guests "
        "diverge; send them from a fixed identifier or outside the VM.",
    "icmp.seq":
        "ICMP sequence numbers differ: the two guests' ping senders are out of step.",
    "dhcp.id":
        "The DHCP transaction ID (xid) is random: a DHCP client in the guest diverges at every "
        "lease renewal; use static addressing in protected VMs.",
    "tcp.srcport":
        "The guests chose different ephemeral source ports for an outgoing connection: pin the "
        "port (bind) or narrow net.ipv4.ip_local_port_range so both pick the same.",
    "udp.srcport":
        "The guests chose different ephemeral UDP source ports: bind a fixed port for that "
        "traffic.",
    "tcp.payload":
        "The applications wrote different bytes (clocks, random IDs, ordering): look at the "
        "application field named here and make it deterministic or serve it outside the VM.",
    "udp.payload":
        "The applications sent different datagrams: look at the bytes shown and make the "
        "differing part deterministic.",
    "data.data":
        "The payload differs: look at the bytes shown.",
    "eth.padding":
        "Only the Ethernet padding differs; colo-compare compares it for UDP/ICMP: check the "
        "guests' NIC drivers (they should pad with zeros).",
    "eth.trailer":
        "Only the bytes after the IP datagram differ; colo-compare compares them for UDP/ICMP: "
        "check the guests' NIC drivers (padding is not zeroed).",
}

PREFIX_HINTS: dict[str, str] = {
    "json.": "A JSON value in the response differs (its member is named here): a clock, a random id "
             "or a counter; make it derive from the request, or serve it outside the protected VM.",
    "ntp.": "NTP carries each guest's clock: keep NTP out of the protected VM.",
    "dns.": "DNS answers differ between the guests (IDs, TTLs, record order): look at the field "
            "named here.",
    "http.": "An HTTP field differs: look at the header named here and make it deterministic.",
    "tls.": "TLS output is randomised by design: terminate TLS outside the protected VM.",
    "ssh.": "SSH output is randomised and encrypted per session: a difference after the key "
            "exchange is a consequence of the session's first one.",
    "dhcp.": "DHCP client state differs: use static addressing in protected VMs.",
    "tcp.options.": "A TCP option differs between the guests; colo-compare ignores options for "
                    "TCP payload compares.",
    "ip.": "An IP header field differs; only protocols compared as whole frames are affected.",
    "eth.": "An Ethernet header field differs; only protocols compared as whole frames are "
            "affected: give both VMs the same MAC.",
}

CAUSE_HINTS: dict[str, str] = {
    "size_mismatch":
        "No secondary frame of the same size was queued: the guests sent different lengths "
        "(variable-length content, different segmentation or padding).",
    "ack_gate":
        "The payload matched but the secondary has not acknowledged the data yet: the guests' "
        "TCP ACKs differ (delayed ACKs, or ISN/ACK offsets not rewritten).",
    "expired":
        "One side never produced the frame within compare_timeout: a frame only one guest sent "
        "(retransmission, extra ACK, timer), or a timeout too short for the secondary's lag.",
}

PROTOCOL_HINTS: dict[str, str] = {
    "tcp": "The TCP payloads differ: look at the bytes shown.",
    "udp": "The UDP datagrams differ: look at the bytes shown.",
    "icmp": "The ICMP messages differ after the IP header: look at the field named here.",
}

GENERIC_HINT = "The frames differ: look at the bytes shown."

CONTEXT_HINTS: tuple[tuple[str, str], ...] = (
    (r"(?i)(request|req|trace|correlation|transaction|span|message|session)[-_ ]?id\b|uuid|guid|nonce",
     "A random id (a request, trace or message id, a UUID, a nonce): each guest draws its own. Take it "
     "from the client's request (echo X-Request-Id), derive it from the request and a counter, or add it "
     "outside the protected VM (a proxy in front of it)."),
    (r"(?i)time|date|timestamp|\bts\b|_ts\b|\bnow\b|expires|uptime|clock",
     "A clock value: each guest reads its own clock, at a different moment. Take the time from the request, "
     "round it to what the client needs, or set it outside the protected VM."),
)
"""Hints by a field's context (a JSON member key, an HTTP header's name: ``member request_id``,
``header X-Request-Id``): for the application fields whose name says nothing of what they hold
(``json.value.string``, an HTTP header line tshark has no field for).  The first pattern that
matches the context gives the hint, and the class is that field in that context."""

STATE_ROOTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tls.handshake.random": ("the connection's TLS keys", ("tls.", "tcp.payload", "tcp.segment_data", "data")),
    "tls.handshake.session_id": ("the connection's TLS keys", ("tls.", "tcp.payload", "tcp.segment_data", "data")),
    "tls.handshake.extensions_key_share_key_exchange":
        ("the connection's TLS keys", ("tls.", "tcp.payload", "tcp.segment_data", "data")),
    "ssh.cookie": ("the SSH session's keys", ("ssh.", "tcp.payload", "tcp.segment_data", "data")),
}
"""Fields whose difference changes a connection's state, so that later divergences on the same
flow follow from it: field -> (what it changed, the field-name prefixes of the later
divergences that are its consequences).  A later divergence in any other field (a cleartext
``http.date`` after a session id, say) shows an independent cause and stays a root.  Read by
``explain`` (``_chain_consequences``)."""

ECHO_ROOTS: dict[str, str] = {
    "http.set_cookie": "the session id it set",
}
"""Fields that set a value the server carries on (a session id): a later divergence from the same
server to the same client whose differing bytes are that value again, on both sides, is a
consequence of the root that set it.  Only these fields: a value that merely recurs (the same
counter digit in every datagram) is a class of independent divergences, not a chain.  Read by
``explain`` (``_chain_consequences``)."""
