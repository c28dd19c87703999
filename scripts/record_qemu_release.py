#!/usr/bin/env python3
"""Record the differential scenarios on one QEMU binary (issue 20 item 5).

    PYTHONPATH=. python scripts/record_qemu_release.py BINARY RELEASE [--out FILE] [--only NAME ...]
        [--configure-args FILE] [--source TEXT] [--no-crash-cases]

Runs every scenario of tests/support/scenarios.py that RELEASE's colo-compare can run (a scenario
setting a property the release lacks is listed under "skipped") and recordings.extra_scenarios()
(timers at their defaults), then the crash cases (zero-length
frames, connection-table overflow), and writes tests/data/qemu-recordings/RELEASE.json.gz (format:
tests/support/recordings.py; how the binaries were built: scripts/build_qemu_release.sh and the
README beside the recordings).  --configure-args names the file build_qemu_release.sh wrote
(logs/RELEASE.configure-args), whose options are stored with the recording.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.support import recordings  # noqa: E402
from tests.support.scenarios import all_scenarios  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("release", help="the release the binary was built from, e.g. 6.2.0")
    ap.add_argument("--out", help="default: tests/data/qemu-recordings/RELEASE.json.gz")
    ap.add_argument("--only", nargs="*", help="record only these scenarios (for trying things out)")
    ap.add_argument("--configure-args", help="file with the configure line build_qemu_release.sh used")
    ap.add_argument("--source", help='default: "jasowang/qemu tag vRELEASE"')
    ap.add_argument("--no-crash-cases", action="store_true")
    a = ap.parse_args(argv)

    configure = []
    if a.configure_args:
        with open(a.configure_args) as f:
            line = f.read().split()
        configure = line[1:] if line and line[0] == "configure" else line
    scenarios = all_scenarios() + recordings.extra_scenarios()
    if a.only:
        scenarios = [s for s in scenarios if s.name in set(a.only)]
    out = a.out or os.path.join(ROOT, "tests", "data", "qemu-recordings", f"{a.release}.json.gz")
    t0 = time.monotonic()
    rec = recordings.record_binary(a.binary, a.release, scenarios, configure=configure, source=a.source,
                                   crash_cases=not a.no_crash_cases,
                                   log=lambda m: print(m, flush=True))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    recordings.save_recording(out, rec)
    print(f"{a.release} (row {rec['row']}, {rec['binary']['version']}): {len(rec['scenarios'])} recorded, "
          f"{len(rec['skipped'])} skipped, {len(rec['errors'])} errors, {len(rec['crash_cases'])} crash cases "
          f"in {time.monotonic() - t0:.0f} s -> {out} ({os.path.getsize(out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
