"""``--record DIR``: what came in and what went out, as captures ``colo-replay replay`` takes back.

Files (written by ``colo_replay.captures.writer.PcapngWriter``; one pcapng per stream, nanosecond host timestamps on the live engine clock, Ethernet
link type; frames as colo-compare read them, vnet header bytes included)::

    primary_in.pcapng     every frame read from primary_in, stamped with its engine arrival time
    secondary_in.pcapng   the same for secondary_in
    outdev.pcapng         every frame written to outdev, stamped with its release time; the
                          packet comment names the primary frame number and the cause
    checkpoints.txt       flush times (COLO_CHECKPOINT or --flush-on-request), one per line in
                          ``--checkpoints-at`` syntax (``<ns>ns``)
    requests.txt          checkpoint request times (DO_CHECKPOINT), same syntax, with the cause
    manifest.json         the compare properties and the replay options that reproduce the run
                          (``scan_phase_ns`` puts the expiry-scan grid where it was live,
                          ``end_ns`` / ``--until`` runs the replay's clock on to the stop, so
                          scans and flushes after the last frame replay too)

Frame numbers in the live timeline (``primary_frame`` / ``secondary_frame``) are the record
numbers in these files, so ``colo-replay replay`` on them gives the same numbers.

Replay::

    colo-replay replay DIR/primary_in.pcapng DIR/secondary_in.pcapng \
        --checkpoints-at DIR/checkpoints.txt --scan-phase <manifest scan_phase_ns>ns \
        --until <manifest stop_ns>ns [...]

(``manifest.json`` holds that command line, ``replay_command``.)
"""

from __future__ import annotations

import json
import os
import shlex

from ..captures.writer import PcapngWriter

__all__ = ["Recorder", "PcapngWriter"]


def _writer(directory: str, name: str) -> PcapngWriter:
    return PcapngWriter(os.path.join(directory, f"{name}.pcapng"), name, application="colo-replay live")


class Recorder:
    def __init__(self, directory: str, manifest: dict):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.inputs = (_writer(directory, "primary_in"), _writer(directory, "secondary_in"))
        self.outdev = _writer(directory, "outdev")
        self.ckpt = open(os.path.join(directory, "checkpoints.txt"), "w", encoding="utf-8")
        self.ckpt.write("# flush times of the live run (colo-replay replay --checkpoints-at)\n")
        self.req = open(os.path.join(directory, "requests.txt"), "w", encoding="utf-8")
        self.req.write("# checkpoint request (DO_CHECKPOINT) times of the live run\n")
        self.manifest = dict(manifest)
        self.first_ns: list = [None, None]
        self.vnet_lens: set = set()

    def frame_in(self, side: int, t_ns: int, data: bytes, vnet_hdr_len: int) -> None:
        if self.first_ns[side] is None:
            self.first_ns[side] = t_ns
        self.vnet_lens.add(vnet_hdr_len)
        self.inputs[side].write(t_ns, data, f"vnet_hdr_len={vnet_hdr_len}" if vnet_hdr_len else None)

    def frame_out(self, t_ns: int, data: bytes, vnet_hdr_len: int, ident, cause: str) -> None:
        c = f"P#{ident} {cause}"
        if vnet_hdr_len:
            c += f" vnet_hdr_len={vnet_hdr_len}"
        self.outdev.write(t_ns, data, c)

    def checkpoint(self, t_ns: int, why: str) -> None:
        self.ckpt.write(f"{t_ns}ns  # {why}\n")

    def request(self, t_ns: int, cause: str) -> None:
        self.req.write(f"{t_ns}ns  # {cause}\n")

    def close(self, summary: dict | None = None, stop_ns: int | None = None) -> dict:
        if stop_ns is not None:
            self.manifest["stop_ns"] = stop_ns
        for w in (*self.inputs, self.outdev):
            w.close()
        self.ckpt.close()
        self.req.close()
        m = self.manifest
        firsts = [t for t in self.first_ns if t is not None]
        start = m["engine_start_ns"]
        m["first_arrival_ns"] = min(firsts) if firsts else None
        m["scan_phase_ns"] = (start - min(firsts)) if firsts else 0
        lens = sorted(self.vnet_lens)
        m["vnet_hdr_lens_seen"] = lens
        replay_opts = {"qemu": m["qemu"], "scan_phase_ns": m["scan_phase_ns"]}
        if stop_ns is not None:
            replay_opts["end_ns"] = stop_ns       # the replay's clock runs on to the stop, as live
        for k in ("compare_timeout", "expired_scan_cycle", "max_queue_size"):
            if m.get(k) is not None:
                replay_opts[k] = m[k]
        if m.get("vnet_hdr_support"):
            replay_opts["vnet_hdr_support"] = True
            if len(lens) == 1:
                replay_opts["vnet_hdr_len"] = lens[0]
            elif len(lens) > 1:
                m["replay_caveat"] = ("frames carried different vnet header lengths; the replay "
                                      "takes one length for all frames")
                replay_opts["vnet_hdr_len"] = lens[0]
        m["replay_options"] = replay_opts
        d = self.dir
        cmd = ["colo-replay", "replay", os.path.join(d, "primary_in.pcapng"), os.path.join(d, "secondary_in.pcapng"),
               "--qemu", m["qemu"], "--checkpoints-at", os.path.join(d, "checkpoints.txt"),
               "--scan-phase", f"{m['scan_phase_ns']}ns"]
        if stop_ns is not None:
            cmd += ["--until", f"{stop_ns}ns"]
        for k in ("compare_timeout", "expired_scan_cycle", "max_queue_size"):
            if k in replay_opts:
                cmd += ["--" + k.replace("_", "-"), str(replay_opts[k])]
        if replay_opts.get("vnet_hdr_support"):
            cmd.append("--vnet-hdr-support")
            if replay_opts.get("vnet_hdr_len"):
                cmd += ["--vnet-hdr-len", str(replay_opts["vnet_hdr_len"])]
        m["replay_command"] = " ".join(shlex.quote(c) for c in cmd)
        m["frames"] = {"primary_in": self.inputs[0].count, "secondary_in": self.inputs[1].count,
                       "outdev": self.outdev.count}
        if summary is not None:
            m["summary"] = summary
        with open(os.path.join(d, "manifest.json"), "w", encoding="utf-8") as fh:
            json.dump(m, fh, indent=2, default=str)
            fh.write("\n")
        return m
