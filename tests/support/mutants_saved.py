"""The mutation run of tests/test_fuzz_saved_inputs.py: the newer commands' own inputs, mutated,
through the real command line.  ``python -m tests.support.mutants_saved SEED COUNT`` makes the
inputs afresh from the sample pair (a saved timeline as Parquet, CSV and JSON Lines, its summary
JSON, a report's JSON as a baseline, a sweep's JSON, pairs manifests as CSV and TOML), then runs
COUNT cases, each one ``python -m colo_replay.cli report|sweep|explain`` in its own process under
``resource.setrlimit`` (address space, CPU time) with a wall-clock limit, on a copy of the inputs
with one or more of them mutated (columns renamed or retyped, bad or huge values, far gaps, cut
or junk bytes, Parquet metadata, JSON of the wrong shapes, nested deep, manifests with bad rows,
missing files, duplicate names; explain's options with odd values).  It prints one JSON line: the
cases by exit status, the slowest, the largest peak RSS, and every case that broke the contract
(``check``), with its command line and stderr.

The contract (README, "Exit codes and bad input"), checked on every case:
* exit status 0, 1 or 2 (never a signal, never another number); no Python traceback on stderr;
* every stderr line is the tool's own (``colo-replay: ...``): one line per message;
* on exit 2 the last stderr line is ``colo-replay: error: ...`` naming what and where (an input
  or output file, an option, a row / line / column / byte offset, a manifest pair);
* the case's time and peak memory under ``TIME_LIMIT_S`` and ``RSS_LIMIT_MB``;
* inputs byte-identical afterwards, nothing new beside them; no temporary file left beside an
  output;
* an output asked for: on exit 0 or 1 written (replacing what was there); on exit 2 either
  untouched (absent, or the file that was there before, byte for byte) or written and marked
  partial as its command documents (a report's JSON ``verdict.status`` partial / empty /
  interrupted; a sweep's CSV ``<file>.partial`` sidecar, JSON ``"partial": true``, Parquet
  ``colo_replay.partial`` metadata, or a row whose ``partial`` is true).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = {"primary.pcap": os.path.join(REPO, "sample_pcaps", "primary.pcap"),
           "secondary.pcap": os.path.join(REPO, "sample_pcaps", "secondary.pcap")}

AS_LIMIT = 3 << 30            # address space of a case (pyarrow and numpy reserve much more than they touch)
CPU_LIMIT_S = 60
WALL_LIMIT_S = 60             # killed after this: a failure in any case
TIME_LIMIT_S = 20             # the contract's bound (a normal case takes 0.6-2 s)
RSS_LIMIT_MB = 700            # the contract's bound (a normal case peaks at ~150-250 MB)



# Known breaks in code another engineer owns: what they are -> which cases show them.  Those
# cases run and are listed ("known"), not asserted.  None today: --frame's digits (more than
# 4,300, or '²') were one, fixed in Selection.parse_frame.
EXPLAIN_KNOWN: dict = {}


def cli(*args) -> list:
    return [sys.executable, "-m", "colo_replay.cli", *map(str, args)]


# -- the fresh inputs -----------------------------------------------------------------------------

def make_inputs(base: str) -> dict:
    """The unmutated inputs in ``base``, made from the sample pair by the commands themselves."""
    env = _env()
    p, s = (os.path.join(base, n) for n in SAMPLES)
    for name, src in SAMPLES.items():
        shutil.copyfile(src, os.path.join(base, name))

    def run(*args, ok=(0, 1)):
        r = subprocess.run(cli(*args), capture_output=True, text=True, env=env, cwd=base, timeout=120)
        if r.returncode not in ok:
            raise RuntimeError(f"making the inputs: {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr}")

    run("replay", p, s, "-o", "t.parquet", "--summary-json", "s.json")
    run("replay", p, s, "-o", "t.csv")
    run("replay", p, s, "-o", "t.jsonl")
    run("report", "--timeline", "t.parquet", "--summary", "s.json", "--json", "b.json")
    run("sweep", p, s, "--compare-timeout", "1000,3000", "-j", "1", "-o", "sw.json")
    with open(os.path.join(base, "m.csv"), "w") as fh:
        fh.write("name,primary,secondary,filter_rewriter,compare_timeout\n"
                 "rewritten,primary.pcap,secondary.pcap,true,\nraw,primary.pcap,secondary.pcap,,2000\n")
    with open(os.path.join(base, "m.toml"), "w") as fh:
        fh.write('[[pair]]\nname = "rewritten"\nprimary = "primary.pcap"\nsecondary = "secondary.pcap"\n'
                 'filter_rewriter = true\n\n[[pair]]\nname = "raw"\nprimary = "primary.pcap"\n'
                 'secondary = "secondary.pcap"\nexpired_scan_cycle = 500\n')
    return {n: open(os.path.join(base, n), "rb").read() for n in os.listdir(base)}


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=REPO, COLUMNS="200")


# -- mutations ------------------------------------------------------------------------------------

HOSTILE_INTS = [0, -1, 1, 2**31 - 1, 2**31, -2**31 - 1, 2**53 + 1, 2**62, 2**63 - 1, -2**63, 2**63, 2**64,
                10**30, -10**30]
HOSTILE_VALUES = HOSTILE_INTS + [None, True, False, "", "x", "1", "nan", "inf", "-0", "1e308", 1e308, -1e308, 0.5,
                                 1e-300, [], {}, [1, 2], {"a": 1}, "\x00<script>\xff\u202e", "é" * 40, "line 1\nline 2\r\x1b[31m",
                                 "x" * 200_000, [[[[[[]]]]]]]
TIME_VALUES = [2**62 - 1, 2**62, 2**63 - 1, -2**63, -1, 0, 86_400_000_000_001, 10**18 + 10**17]


def _deep(n: int, kind: str = "list") -> str:
    return ("[" * n + "]" * n) if kind == "list" else ('{"a":' * n + "1" + "}" * n)


def _walk(doc, rng, depth=None):
    """A random (container, key) inside ``doc`` (None when ``doc`` is no container)."""
    depth = rng.randint(0, 5) if depth is None else depth
    parent, key = None, None
    node = doc
    for _ in range(depth + 1):
        if isinstance(node, dict) and node:
            k = rng.choice(list(node))
        elif isinstance(node, list) and node:
            k = rng.randrange(len(node))
        else:
            break
        parent, key, node = node, k, node[k]
        if rng.random() < 0.3:
            break
    return parent, key


def mutate_json_doc(doc, rng):
    """One structural edit: a value replaced, a key removed or renamed, an object made a list."""
    op = rng.randrange(7)
    parent, key = _walk(doc, rng)
    if parent is None:
        return rng.choice(HOSTILE_VALUES)
    if op <= 2:
        parent[key] = rng.choice(HOSTILE_VALUES)
    elif op == 3:
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    elif op == 4 and isinstance(parent, dict):
        parent[key + rng.choice(["_", "X", " ", ""]) + "2"] = parent.pop(key)
    elif op == 5:
        v = parent[key]
        parent[key] = list(v.values()) if isinstance(v, dict) else [v]
    else:
        v = parent[key]
        parent[key] = {"0": v} if isinstance(v, list) else str(v) if isinstance(v, (int, float)) else 12345
    return doc


def mutate_json_text(data: bytes, rng) -> bytes:
    """Structural edits, schema changes or byte-level damage of a JSON document."""
    op = rng.randrange(10)
    if op <= 3:
        doc = json.loads(data)
        for _ in range(rng.randint(1, 3)):
            doc = mutate_json_doc(doc, rng)
        return json.dumps(doc, allow_nan=True).encode()
    if op == 4:
        doc = json.loads(data)
        if isinstance(doc, dict):
            doc["schema"] = rng.choice(["colo-replay-report/2", "colo-replay-summary/999", "colo-replay-sweep",
                                        "colo-replay-report/x", "other/1", "", None, 1, "colo-replay-report/-1",
                                        "colo-replay-report/99999999999999999999999"])
            if "schema_version" in doc or rng.random() < 0.3:
                doc["schema_version"] = rng.choice([2, 0, -1, "1", None, 1.5, 10**30])
        return json.dumps(doc).encode()
    if op == 5:                     # deep nesting, at the top or as one value
        deep = _deep(rng.choice([50, 1000, 100_000]), rng.choice(["list", "object"]))
        if rng.random() < 0.5:
            return deep.encode()
        text = data.decode()
        i = text.find(":", rng.randrange(len(text)))
        return (text[:i + 1] + deep + "," + text[i + 1:]).encode() if i > 0 else deep.encode()
    if op == 6:                     # a number token made huge, or a float that is no double
        text = data.decode()
        nums = list(re.finditer(r"(?<=[:\[,] )-?\d+(\.\d+)?", text)) or list(re.finditer(r"\d+", text))
        if nums:
            m = rng.choice(nums)
            text = text[:m.start()] + rng.choice(["9" * 5000, "1e400", "-1e400", "1" * 30, "NaN", "Infinity",
                                                  "-0", "1E-400", "0.1e99999"]) + text[m.end():]
        return text.encode()
    if op == 7:                     # cut
        return data[:rng.randrange(len(data))]
    if op == 8:                     # junk bytes in, or a BOM in front, or invalid UTF-8
        b = bytearray(data)
        pos = rng.randrange(len(b) + 1)
        b[pos:pos] = rng.choice([os.urandom(rng.randint(1, 64)), b"\xff\xfe", b"\xef\xbb\xbf", b"\x00",
                                 b"\xed\xa0\x80", b"\xc3"])
        return bytes(b)
    return rng.choice([b"", b" \n", b"null", b"[]", b"{}", b"1", b'"x"', b"\xef\xbb\xbf{}", os.urandom(300),
                       b'{"schema": "colo-replay-report/1"}', b'{"knobs": {}}', b'{"frames_in": [1, 2]}',
                       b'{"a": 1, "a": [2]}'])


TIMELINE_COLUMNS = ["time_ns", "kind", "cause", "side", "conn", "primary_frame", "secondary_frame", "held_ns",
                    "size", "other_size", "tcp_seq", "tcp_seq_end", "detail"]
CELL_VALUES = ["", " ", "nan", "NaN", "inf", "-inf", "1e3", "1.5", "0x10", "+5", " 7 ", "-0", "true",
               "99999999999999999999999", "-99999999999999999999", "9223372036854775807", "-9223372036854775808",
               "4611686018427387904", "2147483648", "release\x00", "réléase", "\"", "a,b", "checkpoint",
               "miscompare", "primary", "PRIMARY", "x" * 10_000]


def mutate_csv(data: bytes, rng) -> bytes:
    """A CSV timeline: its header, its cells, its rows or its bytes."""
    text = data.decode()
    lines = text.split("\n")
    header, rows = lines[0].split(","), [ln for ln in lines[1:] if ln]
    op = rng.randrange(11)
    if op == 0:                               # a column renamed, dropped, added, duplicated
        i = rng.randrange(len(header))
        which = rng.randrange(4)
        if which == 0:
            header[i] = rng.choice(["Time_ns", "time", "", "time_ns ", "extra", header[(i + 1) % len(header)]])
        elif which == 1:
            del header[i]
            rows = [",".join(c for j, c in enumerate(r.split(",")) if j != i) for r in rows]
        elif which == 2:
            header.append("extra")
            rows = [r + ",1" for r in rows]
        else:
            header[i], header[(i + 1) % len(header)] = header[(i + 1) % len(header)], header[i]
        return "\n".join([",".join(header), *rows, ""]).encode()
    if op <= 3:                               # cells
        for _ in range(rng.randint(1, 3)):
            r = rng.randrange(len(rows))
            cells = rows[r].split(",")
            c = rng.randrange(len(cells))
            cells[c] = rng.choice(CELL_VALUES + [str(v) for v in TIME_VALUES])
            rows[r] = ",".join(cells)
        return "\n".join([",".join(header), *rows, ""]).encode()
    if op == 4:                               # a far gap: the times of one row on shifted
        r = rng.randrange(len(rows))
        shift = rng.choice([86_400_000_000_001, 10**17, -10**17, 2**61, -2**61])
        for k in range(r, len(rows)):
            cells = rows[k].split(",")
            cells[0] = str(int(cells[0]) + shift)
            rows[k] = ",".join(cells)
        return "\n".join([",".join(header), *rows, ""]).encode()
    if op == 5:                               # rows shuffled, duplicated, extra or missing fields
        which = rng.randrange(4)
        if which == 0:
            rng.shuffle(rows)
        elif which == 1:
            rows = rows * rng.choice([2, 50, 400])
        elif which == 2:
            r = rng.randrange(len(rows))
            rows[r] += rng.choice([",1", ",,,,", ""])
            if rows[r].count(",") == len(header) - 1:
                rows[r] = rows[r].rsplit(",", 1)[0]
        else:
            rows = []
        return "\n".join([",".join(header), *rows, ""]).encode()
    if op == 6:
        return data[:rng.randrange(len(data))]
    if op == 7:
        b = bytearray(data)
        pos = rng.randrange(len(b))
        b[pos:pos] = rng.choice([os.urandom(rng.randint(1, 64)), b"\xff", b"\x00", b'"', b"\r", b"\r\n"])
        return bytes(b)
    if op == 8:
        return rng.choice([b"", b"\n", b"\xef\xbb\xbf" + data, data.replace(b"\n", b"\r\n"), data.replace(b",", b";"),
                           data.replace(b"\n", b"\r"), os.urandom(2000)])
    if op == 9:                               # a very long line
        return data + b"1" * rng.choice([10_000, 2_000_000]) + b"\n"
    i = rng.randrange(len(header))            # one column's every value
    v = rng.choice(CELL_VALUES)
    rows = [",".join(v if j == i else c for j, c in enumerate(r.split(","))) for r in rows]
    return "\n".join([",".join(header), *rows, ""]).encode()


def mutate_jsonl(data: bytes, rng) -> bytes:
    lines = [ln for ln in data.decode().split("\n") if ln]
    op = rng.randrange(5)
    if op <= 1:
        r = rng.randrange(len(lines))
        obj = json.loads(lines[r])
        obj = mutate_json_doc(obj, rng)
        lines[r] = json.dumps(obj, allow_nan=True)
    elif op == 2:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(["[]", "1", "null", "{", _deep(100_000), '"x"',
                                                                '{"time_ns": 1e400}']))
    elif op == 3:
        return data[:rng.randrange(len(data))]
    else:                                     # one line's bytes damaged or made another JSON shape
        r = rng.randrange(len(lines))
        lines[r] = mutate_json_text(lines[r].encode(), rng).decode("utf-8", "surrogateescape")
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    return ("\n".join(lines) + "\n").encode()


def mutate_parquet(data: bytes, rng) -> bytes:
    """A Parquet timeline: columns renamed, dropped, retyped; values; rows; metadata; bytes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    op = rng.randrange(12)
    if op == 0:
        return data[:rng.randrange(len(data))]
    if op == 1:
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            # the footer (thrift metadata, the last few hundred bytes) is where a flip hurts most
            pos = rng.randrange(max(0, len(b) - 1200), len(b) - 8) if rng.random() < 0.7 else rng.randrange(len(b))
            b[pos] ^= 1 << rng.randrange(8)
        return bytes(b)
    table = pq.read_table(io.BytesIO(data))
    names = table.column_names
    i = rng.randrange(len(names))
    col = table.column(i)
    if op == 2:                               # renamed or dropped or an extra column
        which = rng.randrange(3)
        if which == 0:
            table = table.rename_columns([rng.choice(["Time_ns", "", "kind ", "time_ns", "x" * 1000]) if j == i else n
                                          for j, n in enumerate(names)])
        elif which == 1:
            table = table.remove_column(i)
        else:
            table = table.append_column("extra", pa.array(np.zeros(len(table), dtype="int64")))
    elif op == 3:                             # retyped
        target = rng.choice([pa.float64(), pa.string(), pa.int8(), pa.uint64(), pa.bool_(), pa.timestamp("ns"),
                             pa.float32(), pa.large_string(), pa.binary(), pa.decimal128(38, 0)])
        try:
            if pa.types.is_dictionary(col.type):
                col = col.cast(pa.string())
            new = col.cast(target, safe=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            new = pa.array([None] * len(table), type=target)
        table = table.set_column(i, names[i], new)
    elif op <= 6:                             # values
        values = col.to_pylist()
        for _ in range(rng.randint(1, 4)):
            r = rng.randrange(len(values))
            if pa.types.is_dictionary(col.type):
                values[r] = rng.choice([None, "", "release\x00", "RELEASE", "x" * 5000, "checkpoint", "primary"])
            elif names[i] == "time_ns" and rng.random() < 0.6:
                values[r] = rng.choice(TIME_VALUES)
            else:
                values[r] = rng.choice([None, *[v for v in HOSTILE_INTS if -2**63 <= v < 2**63]])
        typ = pa.string() if pa.types.is_dictionary(col.type) else pa.int64()
        try:
            new = pa.array(values, type=typ)
        except (pa.ArrowInvalid, OverflowError):
            new = pa.array(values, type=pa.float64())
        if pa.types.is_dictionary(col.type) and rng.random() < 0.7:
            new = new.dictionary_encode()
        table = table.set_column(i, names[i], new)
    elif op == 7:                             # a far gap
        t = np.array(table.column("time_ns").to_pylist(), dtype="int64")
        r = rng.randrange(len(t))
        t[r:] += rng.choice([86_400_000_000_001, 10**17, -10**17, 2**61])
        table = table.set_column(names.index("time_ns"), "time_ns", pa.array(t))
    elif op == 8:                             # rows
        which = rng.randrange(4)
        if which == 0:
            table = table.take(pa.array(rng.sample(range(len(table)), len(table))))
        elif which == 1:
            table = pa.concat_tables([table] * rng.choice([2, 100, 2000]))
        elif which == 2:
            table = table.slice(0, 0)
        else:
            table = table.slice(0, rng.randrange(1, len(table)))
    elif op == 9:                             # key-value metadata
        meta = dict(table.schema.metadata or {})
        choice = rng.randrange(5)
        if choice == 0:
            meta[b"colo_replay.partial"] = rng.choice([b"true", b"false", b"yes", b"\xff", b""])
            meta[b"colo_replay.error"] = rng.choice([b"p.pcap: frame 9: cut", b"\xff\xfe", b"x" * 100_000,
                                                    b"line1\nline2"])
        elif choice == 1:
            meta = {}
        elif choice == 2:
            meta[b"ARROW:schema"] = os.urandom(64)
        elif choice == 3:
            meta[b"pandas"] = rng.choice([b"{}", b"[", json.dumps({"columns": [{"name": 1}]}).encode(),
                                          json.dumps({"index_columns": ["time_ns"], "columns": []}).encode()])
        else:
            meta[b"colo_replay.schema_version"] = rng.choice([b"2", b"0", b"-1", b"x"])
        table = table.replace_schema_metadata(meta)
    elif op == 10:                            # a nested or a null-typed column
        new = rng.choice([pa.array([[1]] * len(table)), pa.nulls(len(table)),
                          pa.array([{"a": 1}] * len(table)), pa.array([b"\xff"] * len(table))])
        table = table.set_column(i, names[i], new)
    else:                                     # the same table, written another way
        out = io.BytesIO()
        pq.write_table(table, out, compression=rng.choice(["zstd", "gzip", "none", "snappy"]),
                       row_group_size=rng.choice([1, 7, 100]), use_dictionary=rng.random() < 0.5,
                       data_page_version=rng.choice(["1.0", "2.0"]))
        return out.getvalue()
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


MANIFEST_FIELDS = {"qemu": ["9.9", "", "4.1", "7.2 ", "7", 41],
                   "compare_timeout": ["0", "-1", "1e3", "99999999999999999999", "2147483648", "abc", "1.5"],
                   "expired_scan_cycle": ["0", "-5", "18446744073709551616", "1", "x"],
                   "max_queue_size": ["0", "4294967296", "18446744073709551615", "99999999999999999999999"],
                   "checkpoint_duration": ["-1", "1e9s", "nan", "inf", "99999999999999999999s", "0"],
                   "checkpoint_delay": ["0.5", "-20", "1e400", "99999999999999999999999"],
                   "filter": ["((", "tcp port 99999", "udp", "\x00", "x" * 5000],
                   "guest": ["auto", "10.0.0.999", "02:00:00:00:00:01", "nonsense"],
                   "vnet_hdr_len": ["-1", "99999", "10", "12"],
                   "primary_offset": ["1e30", "-99999999999999999999s", "5", "nan"],
                   "secondary_offset": ["abc", "999999999999999999999999ms"],
                   "align": ["auto", "none", "sideways"],
                   "checkpoints_at": ["nonexistent.txt", "primary.pcap", ".", "m.csv"],
                   "until": ["+5s", "-5", "99999999999999999999999", "abc", "+99999999999999999999s"],
                   "filter_rewriter": ["maybe", "2", "TRUE", ""],
                   "peer_isn": ["true", "1"],
                   "allow_gaps": ["yes", "x"],
                   "after_checkpoint": ["raw", "sideways"],
                   "unknown_field": ["1"]}
PATH_VALUES = ["nonexistent.pcap", "", ".", "/", "/dev/zero", "/dev/null", "m.csv", "m.toml", "../primary.pcap",
               "primary.pcap\x00", "sub/primary.pcap", "x" * 5000, "b.json", "s.json"]


def valid_but_hostile(data: bytes, fmt: str, rng) -> tuple[bytes, list]:
    """A timeline every value of which is valid, but extreme: times near 2^62, a gap of years
    (with --allow-gaps), connection and frame numbers at their type's ends, rows shuffled or many
    times over, no rows at all; written as ``fmt``.  Also the options it needs."""
    import numpy as np
    import pandas as pd

    df = pd.read_parquet(io.BytesIO(data))
    for c in ("kind", "cause", "side"):
        df[c] = df[c].astype(str)
    argv = []
    n = len(df)
    rows = rng.sample(range(n), min(n, rng.randint(1, 20)))
    op = rng.randrange(9)
    if op == 0:                           # the whole run moved to the end of the time range
        df["time_ns"] += (2**62 - 1) - int(df["time_ns"].max()) - rng.choice([0, 1, 10**9])
    elif op == 1:                         # a gap of years (or of 2^61 ns), accepted by --allow-gaps
        at = rng.randrange(1, n)
        df.loc[at:, "time_ns"] += rng.choice([10 * 365 * 86_400 * 10**9, 2**61, 86_400_000_000_001])
        argv.append("--allow-gaps")
    elif op == 2:
        df.loc[rows, "conn"] = rng.choice([2**31 - 1, -2**31, 0, 10**9])
    elif op == 3:
        col = rng.choice(["held_ns", "size", "other_size", "detail", "tcp_seq", "tcp_seq_end", "primary_frame",
                          "secondary_frame"])
        lo, hi = (-2**31, 2**31 - 1) if col == "other_size" else (-(2**62 - 1), 2**62 - 1) if col == "held_ns" \
            else (-2**63, 2**63 - 1)
        df.loc[rows, col] = rng.choice([lo, hi, -1, 0])
    elif op == 4:
        df = df.sample(frac=1, random_state=rng.randrange(2**31)).reset_index(drop=True)
    elif op == 5:
        df = pd.concat([df] * rng.choice([10, 200]), ignore_index=True)
    elif op == 6:
        df = df.iloc[:0]
    elif op == 7:                         # every time the same
        df["time_ns"] = int(df["time_ns"].iloc[0])
    else:                                 # times going backwards
        df["time_ns"] = int(df["time_ns"].max()) - (df["time_ns"] - int(df["time_ns"].min()))
    for c in df.columns:
        if c not in ("kind", "cause", "side"):
            df[c] = df[c].astype(np.int64 if c not in ("conn", "other_size") else np.int32)
    out = io.BytesIO()
    if fmt == "parquet":
        for c in ("kind", "cause", "side"):
            df[c] = df[c].astype("category")
        df.to_parquet(out, index=False)
    elif fmt == "csv":
        df.to_csv(out, index=False)
    else:
        df.to_json(out, orient="records", lines=True)
    return out.getvalue(), argv


def mutate_manifest_csv(data: bytes, rng) -> tuple[bytes, int]:
    """A CSV manifest; also the --max-settings to give (0: none)."""
    lines = data.decode().splitlines()
    header = lines[0].split(",")
    rows = [ln.split(",") for ln in lines[1:]]
    op = rng.randrange(9)
    cap = 0
    if op <= 2:                               # a field's value
        field = rng.choice(list(MANIFEST_FIELDS))
        if field not in header:
            header.append(field)
            for r in rows:
                r.append("")
        r = rng.choice(rows)
        v = rng.choice(MANIFEST_FIELDS[field])
        r[header.index(field)] = '"' + str(v).replace('"', '""') + '"' if "," in str(v) else str(v)
    elif op == 3:                             # a capture path
        r = rng.choice(rows)
        r[rng.choice([1, 2])] = rng.choice(PATH_VALUES)
    elif op == 4:                             # names: duplicate, empty, hostile
        r = rng.choice(rows)
        r[0] = rng.choice([rows[0][0], "", " ", "<script>", "é\u202e", "x" * 10_000, "a/b", "-", "\x00"])
    elif op == 5:                             # header
        which = rng.randrange(4)
        if which == 0:
            header[rng.randrange(len(header))] = rng.choice(["Name", "", "primary ", "name", "secondary"])
        elif which == 1:
            del header[rng.randrange(len(header))]
        elif which == 2:
            header = []
        else:
            header.append("name")
    elif op == 6:                             # many rows
        n = rng.choice([30, 3000, 100_000])
        rows = [[f"p{k}", "primary.pcap", "secondary.pcap", "", ""] for k in range(n)]
        cap = rng.choice([0, 4, 10]) if n <= 30 else rng.choice([4, 10])
    elif op == 7:                             # rows with too few / too many cells, blank
        r = rng.choice(rows)
        if rng.random() < 0.5:
            r.extend(["x", "y"])
        else:
            del r[rng.randrange(1, len(r)):]
        if rng.random() < 0.3:
            rows.insert(1, [])
    else:                                     # bytes
        b = data
        return rng.choice([b[:rng.randrange(len(b))], b"", b"\xff\xfe" + b, b + os.urandom(100), os.urandom(400),
                           b"\xef\xbb\xbf" + b, b.replace(b",", b"\t"), b"name,primary,secondary\n",
                           b.replace(b"\n", b"\r")]), 0
    text = "\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n"
    return text.encode(), cap


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(v)            # a TOML basic string is a JSON string, for what we write


def mutate_manifest_toml(data: bytes, rng) -> tuple[bytes, int]:
    import tomllib

    doc = tomllib.loads(data.decode())
    pairs = doc["pair"]
    op = rng.randrange(8)
    cap = 0
    if op <= 2:
        field = rng.choice(list(MANIFEST_FIELDS))
        v = rng.choice(MANIFEST_FIELDS[field])
        if isinstance(v, str) and rng.random() < 0.3:
            v = rng.choice([int(v) if re.fullmatch(r"-?\d+", v) else 1, True, 1.5, [v], {"x": v}, -2**63])
        rng.choice(pairs)[field] = v
    elif op == 3:
        rng.choice(pairs)[rng.choice(["primary", "secondary"])] = rng.choice(PATH_VALUES + [1, True, ["a"], {}])
    elif op == 4:
        rng.choice(pairs)["name"] = rng.choice([pairs[0]["name"], "", 5, True, ["x"], "x" * 10_000, "\u202e"])
    elif op == 5:
        which = rng.randrange(4)
        if which == 0:
            del rng.choice(pairs)[rng.choice(["name", "primary", "secondary"])]
        elif which == 1:
            return b'pair = "not tables"\n', 0
        elif which == 2:
            return b"[pair]\nname = 'x'\n", 0
        else:
            return b"[[pairs]]\nname = 'x'\n", 0
    elif op == 6:
        n = rng.choice([30, 3000, 50_000])
        return ("".join(f'[[pair]]\nname = "p{k}"\nprimary = "primary.pcap"\nsecondary = "secondary.pcap"\n'
                        for k in range(n))).encode(), (rng.choice([0, 4, 10]) if n <= 30 else rng.choice([4, 10]))
    else:
        return rng.choice([data[:rng.randrange(len(data))], b"", os.urandom(300), data + b"\xff",
                           b"[[pair]]\n" * 50_000, b"a = " + b"[" * 100_000, b"\xef\xbb\xbf" + data,
                           b'[[pair]]\nname = "x"\nname = "y"\n']), 0
    lines = []
    for p in pairs:
        lines.append("[[pair]]")
        for k, v in p.items():
            if isinstance(v, dict):
                lines.append(f"{k} = {{ " + ", ".join(f"{a} = {_toml_value(b)}" for a, b in v.items()) + " }")
            elif isinstance(v, list):
                lines.append(f"{k} = [" + ", ".join(_toml_value(x) for x in v) + "]")
            else:
                lines.append(f"{k} = {_toml_value(v)}")
    return ("\n".join(lines) + "\n").encode(), cap


def many_pairs_sweep(data: bytes, n: int) -> bytes:
    """The sweep JSON's rows, recommendations and pairs repeated for ``n`` pairs."""
    doc = json.loads(data)
    rows, recs, pairs = [], [], []
    for k in range(n):
        for r in doc["rows"]:
            rows.append({**r, "pair": f"p{k}"})
        pairs.append({**doc["pairs"][0], "name": f"p{k}"})
        recs.append({**doc["recommendations"][0], "pair": f"p{k}", "row": len(rows) - 1})
    doc.update(rows=rows, pairs=pairs, recommendations=recs)
    return json.dumps(doc).encode()


def odd_but_valid_manifest(kind: str, rng) -> tuple[bytes, int]:
    """A manifest every row of which is valid, some of them odd: long or hostile names, paths
    spelled another way, the other profile, options at their ends, many pairs under the cap."""
    rows = [{"name": "rewritten", "primary": "primary.pcap", "secondary": "secondary.pcap", "filter_rewriter": True},
            {"name": "raw", "primary": "primary.pcap", "secondary": "secondary.pcap"}]
    cap = 0
    for _ in range(rng.randint(1, 3)):
        row = rng.choice(rows)
        op = rng.randrange(8)
        if op == 0:
            row["name"] = rng.choice(["x" * 10_000, "<script>alert(1)</script>", "é\u202e名", "a b", "1", "'\""])
        elif op == 1:
            row[rng.choice(["primary", "secondary"])] = rng.choice(["./primary.pcap", "../in/primary.pcap",
                                                                   "sub/../primary.pcap"])
        elif op == 2:
            row["qemu"] = "4.1"
        elif op == 3:
            row.update(rng.choice([{"compare_timeout": 4294967295}, {"max_queue_size": 1}, {"checkpoint_delay": "0"},
                                   {"checkpoint_duration": "0"}, {"expired_scan_cycle": 1}, {"until": "+5s"},
                                   {"filter": "udp"}, {"filter": "tcp port 9"}, {"primary_offset": "-1s"},
                                   {"secondary_offset": "100000s"}, {"guest": "auto"}, {"align": "auto"},
                                   {"allow_gaps": True}, {"after_checkpoint": "raw"}]))
        elif op == 4:
            rows += [{"name": f"p{k}", "primary": "primary.pcap", "secondary": "secondary.pcap"} for k in range(6)]
        elif op == 5:
            row["primary"], row["secondary"] = row["secondary"], row["primary"]
        elif op == 6:
            row["secondary"] = row["primary"]
        else:
            row["checkpoints_at"] = "ck.txt"
    if kind == "csv":
        import csv
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=sorted({k for r in rows for k in r}, key=lambda k: (k != "name", k)),
                           lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return out.getvalue().encode(), cap
    text = "".join("[[pair]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in r.items()) for r in rows)
    return text.encode(), cap


def mutate_capture(data: bytes, rng) -> bytes:
    from .mutants import mutate
    return mutate(data, rng)


# -- cases ----------------------------------------------------------------------------------------

def report_case(rng, originals) -> dict:
    """``report --timeline T --summary S [--baseline B] [--sweep SW]``, one or two inputs mutated."""
    fmt = rng.choice(["parquet", "parquet", "csv", "csv", "jsonl"])
    mutated = []
    files = {f"t.{fmt}": originals[f"t.{fmt}"], "s.json": originals["s.json"]}
    argv = ["report", "--timeline", f"in/t.{fmt}"]
    if rng.random() < 0.85:
        argv += ["--summary", "in/s.json"]
    else:
        del files["s.json"]
    if rng.random() < 0.5:
        files["b.json"] = originals["b.json"]
        argv += ["--baseline", "in/b.json"]
        if rng.random() < 0.3:
            argv += ["--tolerance", rng.choice(["held_p99=+10%", "checkpoints=+0", "checkpoints=any", "x=+1",
                                                "checkpoints=+1e400%", "held_p99=+nan%", "checkpoints=-5",
                                                "checkpoints=+99999999999999999999999", "=", ",,", "roots=+5%%"])]
    if rng.random() < 0.25:
        files["sw.json"] = originals["sw.json"]
        argv += ["--sweep", "in/sw.json"]
        if rng.random() < 0.2:            # valid, of thousands of pairs: the plot and table stay bounded
            files["sw.json"] = many_pairs_sweep(originals["sw.json"], rng.choice([500, 3000]))
            mutated.append("sw.json:many-pairs")
    if rng.random() < 0.15:
        argv += rng.choice([["--allow-gaps"], ["--top", "1"], ["--top", "999999999999"], ["--allow-empty"]])
    if "s.json" in files and rng.random() < 0.2:      # a saved run that says it is partial, empty, interrupted
        doc = json.loads(files["s.json"])
        key = rng.choice(["error", "nothing_compared", "interrupted", "partial", "warnings"])
        doc[key] = rng.choice(["p.pcap: frame 9 at byte offset 200: cut", True, "line 1\nline 2\x1b[31m", "",
                               ["w\nx"], "x" * 100_000])
        files["s.json"] = json.dumps(doc).encode()
        mutated.append(f"s.json:{key}")
    mutable = [n for n in files]
    if rng.random() < 0.3:                # valid values at their extremes: the report must stay bounded
        files[f"t.{fmt}"], extra = valid_but_hostile(originals["t.parquet"], fmt, rng)
        argv += extra
        mutated.append(f"t.{fmt}:valid")
        mutable = [n for n in files if n != f"t.{fmt}" and rng.random() < 0.3]
    for name in rng.sample(mutable, min(len(mutable), 2 if rng.random() < 0.2 else 1)):
        mutator = {"parquet": mutate_parquet, "csv": mutate_csv, "jsonl": mutate_jsonl,
                   "json": mutate_json_text}[name.rsplit(".", 1)[1]]
        files[name] = mutator(files[name], rng)
        mutated.append(name)
    outputs = {}
    for flag, name in rng.sample([("--json", "r.json"), ("--markdown", "r.md"), ("-o", "r.html")],
                                 rng.choice([1, 1, 1, 2])):
        argv += [flag, f"out/{name}"]
        outputs[f"out/{name}"] = "report-" + name.rsplit(".", 1)[1]
    return {"command": "report", "argv": argv, "files": files, "outputs": outputs, "mutated": mutated}


def sweep_case(rng, originals) -> dict:
    kind = rng.choice(["csv", "toml"])
    files = {n: originals[n] for n in SAMPLES}
    manifest = originals[f"m.{kind}"]
    mutated = [f"m.{kind}"]
    if rng.random() < 0.25:                 # a pair whose capture is damaged: its rows partial, exit 2
        files["cut.pcap"] = mutate_capture(originals["primary.pcap"], rng)
        manifest = manifest.replace(b"primary.pcap", b"cut.pcap", 1)
        mutated.append("cut.pcap")
    if "cut.pcap" in files and rng.random() < 0.2:
        data, cap = manifest, 0
    elif rng.random() < 0.3 and "cut.pcap" not in files:
        data, cap = odd_but_valid_manifest(kind, rng)
        files["ck.txt"] = b"# measured flushes\n" + (b"1795653483.5\n" if rng.random() < 0.5 else b"")
        mutated[0] += ":valid"
    else:
        data, cap = (mutate_manifest_csv if kind == "csv" else mutate_manifest_toml)(manifest, rng)
    files[f"m.{kind}"] = data
    if rng.random() < 0.1:                  # the manifest names files in a sub-directory and other inputs
        files["sub/primary.pcap"] = originals["primary.pcap"]
        files["b.json"] = originals["b.json"]
    grid = rng.choice([["--compare-timeout", "1000,3000"], ["--compare-timeout", "3000"],
                       ["--expired-scan-cycle", "500,1000"], ["--checkpoint-delay", "0,20s"]])
    if rng.random() < 0.1:
        grid = rng.choice([["--compare-timeout", "1:99999999999999999999:x1.0000001"], ["--compare-timeout", "0"],
                           ["--checkpoint-duration", "1ms:1e9s:+1ms"], ["--max-queue-size", "1:10:x1"],
                           ["--compare-timeout", ",".join(["1000"] * 20_000)]])
    argv = ["sweep", "--pairs", f"in/m.{kind}", *grid, "-j", "1"]
    if cap:
        argv += ["--max-settings", str(cap)]
    ext = rng.choice(["csv", "json", "parquet"])
    outputs = {f"out/sw.{ext}": f"sweep-{ext}"}
    argv += ["-o", f"out/sw.{ext}"]
    if rng.random() < 0.15:
        argv += ["--plot", "out/p.svg"]
        outputs["out/p.svg"] = "plot"
    return {"command": "sweep", "argv": argv, "files": files, "outputs": outputs, "mutated": mutated}


EXPLAIN_ODD = {"--request": ["0", "-1", "1", "26", "27", "99999999999999999999999", "abc", "", "1.5", " 3"],
               "--frame": ["P#1", "S#1", "P#2", "P#0", "X#1", "P#-1", "P#99999999999999999999999", "p#3", "P#1.5",
                           "", "#", "P#", " P#1", "S#1e3", "P#١", "P#²", "S#" + "9" * 5000, "P#1 S#1"],
               "--flow": ["", " ", "udp :53", "(((", "\x01\x1b[31m", "a" * 100_000, "tcp", "10.0.0.", ":99999999",
                          "TCP :80", "udp tcp", "é\u202e", "*", ".*"],
               "--limit": ["0", "1", "99999999999999999999999", "-1", "x"]}


def explain_case(rng, originals) -> dict:
    files = {n: originals[n] for n in SAMPLES}
    argv = ["explain", "in/primary.pcap", "in/secondary.pcap", "--no-other-profile"]
    argv += ["--no-tshark"] if rng.random() < 0.7 else []
    argv += ["--json"] if rng.random() < 0.3 else []
    argv += ["--filter-rewriter"] if rng.random() < 0.3 else []
    for opt in rng.sample(list(EXPLAIN_ODD), rng.randint(1, 3)):
        argv += [opt, rng.choice(EXPLAIN_ODD[opt])]
    outputs = {}
    mutated = []
    if rng.random() < 0.3:
        target = rng.choice(["out/e.pcapng", "out/e.pcapng", "out", "out/nodir/e.pcapng", "in/primary.pcap", "",
                             "-", "out/e.pcap"])
        argv += ["--evidence", target]
        if target.startswith("out/") and target.count("/") == 1:
            outputs[target] = "evidence"
    if rng.random() < 0.1:                  # a mutated capture (the replay fuzz covers them: a few only)
        side = rng.choice(list(SAMPLES))
        files[side] = mutate_capture(files[side], rng)
        mutated.append(side)
    return {"command": "explain", "argv": argv, "files": files, "outputs": outputs, "mutated": mutated}


def make_case(rng, originals) -> dict:
    r = rng.random()
    case = (report_case if r < 0.45 else sweep_case if r < 0.75 else explain_case)(rng, originals)
    # some outputs exist already: a failed run must leave them as they were
    case["existing"] = {p: b"EXISTING " + p.encode() + b"\n" for p in case["outputs"] if rng.random() < 0.3}
    for p in [p for p in case["existing"] if case["outputs"][p] == "sweep-csv"]:
        case["existing"][p + ".partial"] = b"a stale sidecar: a complete run removes it\n"
    return case


# -- running and checking -------------------------------------------------------------------------

def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S))
    os.setsid()                              # its own process group: killed whole on a timeout


def _snapshot(d: str) -> dict:
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            if os.path.isfile(p):
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def run_case(case: dict, work: str) -> dict:
    """Run ``case`` in ``work`` (emptied first); the result: status, seconds, peak RSS, stderr and
    the contract's breaks (``problems``)."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "in"))
    os.makedirs(os.path.join(work, "out"))
    for name, data in case["files"].items():
        p = os.path.join(work, "in", name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(data)
    for rel, data in case["existing"].items():
        with open(os.path.join(work, rel), "wb") as fh:
            fh.write(data)
    before = _snapshot(os.path.join(work, "in"))
    with open(os.path.join(work, "stdout"), "wb") as out, open(os.path.join(work, "stderr"), "wb") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cli(*case["argv"]), stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=work,
                                env=_env(), preexec_fn=_limits)
        killed = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > WALL_LIMIT_S and not killed:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.01)
        seconds = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    rss_mb = usage.ru_maxrss / 1024
    stderr = open(os.path.join(work, "stderr"), "rb").read().decode("utf-8", "replace")
    problems = check(case, work, proc.returncode, stderr, seconds, rss_mb, before, killed)
    return {"status": proc.returncode, "seconds": round(seconds, 3), "rss_mb": round(rss_mb, 1), "stderr": stderr,
            "problems": problems}


_WHERE = re.compile(r"\b(row|rows|line|column|byte offset|frame|\[\[pair\]\]|pair|key|field)\b|--[a-z]|(^|\s)-[oj]\b|"
                    r"'-[a-z]'|\w\.(json|csv|toml|parquet|jsonl|pcap|pcapng|svg|png|html|md|txt)\b", re.I)


def check(case, work, status, stderr, seconds, rss_mb, before, killed) -> list:
    problems = []
    if killed:
        problems.append(f"killed after {WALL_LIMIT_S} s")
    if status not in (0, 1, 2):
        problems.append(f"exit status {status}")
    if "Traceback" in stderr:
        problems.append("a Python traceback on stderr")
    lines = [ln.rsplit("\r", 1)[-1] for ln in stderr.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    foreign = [ln for ln in lines if not ln.startswith("colo-replay")]
    if foreign:
        problems.append(f"{len(foreign)} stderr lines not the tool's own, e.g. {foreign[0][:200]!r}")
    if status == 2:
        last = lines[-1] if lines else ""
        if not last.startswith("colo-replay: error: "):
            problems.append(f"exit 2 but the last stderr line is no error line: {last[:300]!r}")
        elif not _WHERE.search(last[len("colo-replay: error: "):]):
            problems.append(f"exit 2: the error line names no file, option or place: {last[:300]!r}")
    if seconds > TIME_LIMIT_S:
        problems.append(f"took {seconds:.1f} s (bound {TIME_LIMIT_S} s)")
    if rss_mb > RSS_LIMIT_MB:
        problems.append(f"peak RSS {rss_mb:.0f} MB (bound {RSS_LIMIT_MB} MB)")
    after = _snapshot(os.path.join(work, "in"))
    if after != before:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        problems.append(f"inputs changed or added: {changed[:5]}")
    leftovers = [n for n in os.listdir(os.path.join(work, "out")) if n.startswith(".") and n.endswith(".tmp")]
    if leftovers:
        problems.append(f"temporary files left: {leftovers}")
    for rel, kind in case["outputs"].items():
        problems += _check_output(os.path.join(work, rel), kind, status, case["existing"].get(rel))
    return problems


def _check_output(path, kind, status, existing) -> list:
    exists = os.path.exists(path)
    data = open(path, "rb").read() if exists else None
    untouched = (data == existing) if existing is not None else not exists
    if status in (0, 1):
        if not exists or data == existing:
            return [f"{os.path.basename(path)}: asked for, exit {status}, not written"]
        if kind == "sweep-csv" and os.path.exists(path + ".partial"):
            return [f"{os.path.basename(path)}: complete (exit {status}), but a .partial sidecar is left beside it"]
        return []
    if status != 2 or untouched:
        return []
    try:
        partial = _marked_partial(path, kind, data)
    except Exception as exc:       # noqa: BLE001 - an output its own format cannot read: not marked
        return [f"{os.path.basename(path)}: written on exit 2 and unreadable ({type(exc).__name__}: {exc})"]
    if partial is None:
        return []
    return [] if partial else [f"{os.path.basename(path)}: written on exit 2 but not marked partial"]


def _marked_partial(path, kind, data) -> bool | None:
    """Whether a written output says it is partial as its command documents (None: it cannot say)."""
    if kind == "report-json":
        try:
            return json.loads(data)["verdict"]["status"] in ("partial", "empty", "interrupted")
        except (ValueError, KeyError, TypeError):
            return False
    if kind in ("report-md", "report-html"):
        return any(w in data for w in (b"PARTIAL", b"NOTHING COMPARED", b"INTERRUPTED"))
    if kind == "sweep-csv":
        if os.path.exists(path + ".partial"):
            return True
        import pandas as pd
        return bool(pd.read_csv(io.BytesIO(data))["partial"].astype(str).str.lower().eq("true").any())
    if kind == "sweep-json":
        doc = json.loads(data)
        return doc.get("partial") is True or any(r.get("partial") for r in doc.get("rows", []))
    if kind == "sweep-parquet":
        import pyarrow.parquet as pq
        t = pq.read_table(path)
        return (t.schema.metadata or {}).get(b"colo_replay.partial") == b"true" or any(t.column("partial").to_pylist())
    return None                 # a plot or an evidence file: its command's error line says it


def _arg(a: str) -> str:
    """An argument as a shell would take it, a long one cut (its length said)."""
    import shlex
    cut = a if len(a) <= 80 else a[:40] + f"...({len(a)} characters)"
    return shlex.quote(cut) if cut.isprintable() else repr(cut)


def main(seed: int, count: int, keep: str | None = None, progress: bool = False) -> dict:
    rng = random.Random(seed)
    out = {"seed": seed, "cases": 0, "by_status": {}, "by_command": {}, "slowest_s": 0.0, "max_rss_mb": 0.0,
           "breaks": [], "known": []}
    with tempfile.TemporaryDirectory(prefix="mutants-saved-") as d:
        base = os.path.join(d, "base")
        os.makedirs(base)
        originals = make_inputs(base)
        for i in range(count):
            case = make_case(rng, originals)
            result = run_case(case, os.path.join(d, "case"))
            out["cases"] += 1
            out["by_status"][str(result["status"])] = out["by_status"].get(str(result["status"]), 0) + 1
            by = out["by_command"].setdefault(case["command"], {})
            by[str(result["status"])] = by.get(str(result["status"]), 0) + 1
            out["slowest_s"] = max(out["slowest_s"], result["seconds"])
            out["max_rss_mb"] = max(out["max_rss_mb"], result["rss_mb"])
            if progress:
                last = (result["stderr"].strip().rsplit("\n", 1) or [""])[-1]
                print(f"{i} {case['command']} {result['status']} {result['seconds']}s {result['rss_mb']}MB "
                      f"{len(result['problems'])} {last[:160]!r}", file=sys.stderr, flush=True)
            if result["problems"]:
                entry = {"case": i, "seed": seed, "command": "colo-replay " + " ".join(map(_arg, case["argv"])),
                         "mutated": case["mutated"], "status": result["status"], "seconds": result["seconds"],
                         "problems": result["problems"], "stderr_tail": result["stderr"][-1500:]}
                known = [k for k, shows in EXPLAIN_KNOWN.items() if case["command"] == "explain" and shows(case["argv"])]
                entry["known"] = known
                out["known" if known else "breaks"].append(entry)
                if keep:
                    dest = os.path.join(keep, f"case-{seed}-{i}")
                    shutil.rmtree(dest, ignore_errors=True)
                    shutil.copytree(os.path.join(d, "case"), dest)
    return out


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    keep = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--keep=")), None)
    print(json.dumps(main(int(args[0]), int(args[1]), keep=keep, progress="--progress" in sys.argv)))
