"""The mutation run of tests/test_fuzz.py, in its own process so that its memory and time can be
bounded (``resource.setrlimit``): ``python -m tests.support.mutants SEED COUNT`` replays COUNT
mutated copies of the sample captures through ``api.replay`` and prints one JSON line: how many
ended in results, in a capture error (partial results) or in a ValueError (options), the slowest
run, and every other exception (which must not happen)."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = [os.path.join(REPO, "sample_pcaps", n) for n in ("primary.pcap", "secondary.pcap")]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits: byte flips, a record-header field set to an extreme, a cut,
    an inserted or deleted run, a duplicated slice."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and len(b) > 40:
            # a 32-bit field of some record header region: timestamps, caplen, orig_len
            at = rng.randrange(24, len(b) - 4) & ~3
            b[at:at + 4] = struct.pack("<I", rng.choice([0, 1, 999_999, 1_000_000, 2**31, 2**32 - 1,
                                                          rng.randrange(2**32)]))
        elif op == 2:
            del b[pos:]
        elif op == 3:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif op == 4:
            del b[pos:pos + rng.randint(1, 64)]
        else:
            end = min(len(b), pos + rng.randint(1, 512))
            b[pos:pos] = b[pos:end]
    return bytes(b)


def main(seed: int, count: int) -> dict:
    from colo_replay import api
    from colo_replay.captures.errors import CaptureError

    rng = random.Random(seed)
    originals = [open(p, "rb").read() for p in SAMPLES]
    out = {"results": 0, "partial": 0, "value_error": 0, "capture_error": 0, "slowest_s": 0.0, "crashes": []}
    with tempfile.TemporaryDirectory() as d:
        for i in range(count):
            side = rng.randrange(2)
            paths = list(SAMPLES)
            paths[side] = os.path.join(d, f"m{i}.pcap")
            with open(paths[side], "wb") as fh:
                fh.write(mutate(originals[side], rng))
            t0 = time.monotonic()
            signal.alarm(10)                     # each mutant: 10 s at most, or it is a failure
            try:
                tl = api.replay(*paths)
                tl.summary
                out["partial" if tl.partial else "results"] += 1
            except CaptureError:
                out["capture_error"] += 1        # the file header itself: nothing to replay
            except ValueError:
                out["value_error"] += 1
            except Exception:                    # noqa: BLE001 - what the test is looking for
                out["crashes"].append(f"mutant {i} (seed {seed}, side {side}): " + traceback.format_exc(limit=3))
            signal.alarm(0)
            out["slowest_s"] = max(out["slowest_s"], time.monotonic() - t0)
            os.remove(paths[side])
    return out


def _too_slow(signum, frame):
    raise TimeoutError("a mutant ran for more than 10 s")


if __name__ == "__main__":
    signal.signal(signal.SIGALRM, _too_slow)
    limit = 3 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))          # a mutant may not eat the machine
    resource.setrlimit(resource.RLIMIT_CPU, (120, 120))
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
