"""A saved run: the timeline file written by ``replay -o`` / ``live -o`` and the summary JSON
written by ``--summary-json``, read back for a report made later (a rig run, without replaying).
"""

from __future__ import annotations

import json

import pandas as pd

from ...output.timeline import COLUMNS

__all__ = ["load_timeline", "load_summary"]

_CATEGORICAL = ("kind", "cause", "side")


def load_timeline(path: str) -> pd.DataFrame:
    """The events of a timeline file (.parquet, .csv, .jsonl / .json / .ndjson), with the
    columns of ``colo_replay.output.timeline``; kind, cause and side categorical as in a live
    ``Timeline.events``.  ValueError (one line, naming the file) when it is not a timeline."""
    lower = str(path).lower()
    if not lower.endswith((".parquet", ".csv", ".jsonl", ".json", ".ndjson")):
        raise ValueError(f"{path}: unknown timeline format (use .parquet, .csv or .jsonl)")
    try:
        if lower.endswith(".parquet"):
            df = pd.read_parquet(path)
        elif lower.endswith(".csv"):
            df = pd.read_csv(path, keep_default_na=False, dtype={c: str for c in _CATEGORICAL})
        else:
            df = pd.read_json(path, lines=True, dtype={c: str for c in _CATEGORICAL})
    except OSError:
        raise                      # the command line names the file (bad_input)
    except Exception as exc:       # pyarrow's ArrowInvalid, pandas' parser errors: not a timeline
        raise ValueError(f"{path}: not a readable timeline ({type(exc).__name__}: {exc})") from None
    if not len(df.columns) and not len(df):
        df = pd.DataFrame({c: pd.Series(dtype="int64") for c in COLUMNS})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a colo-replay timeline (missing columns: {', '.join(missing)})")
    df = df[list(COLUMNS)].copy()
    for c in _CATEGORICAL:
        df[c] = df[c].fillna("").astype(str).astype("category")
    for c in COLUMNS:
        if c not in _CATEGORICAL:
            df[c] = pd.to_numeric(df[c], errors="raise").astype("int64")
    return df


def read_json(path: str):
    """A JSON file's data; ValueError naming the file (and the line) when it is not JSON."""
    with open(path, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not JSON (not UTF-8 text)") from None


def load_summary(path: str | None) -> dict:
    """The summary JSON (``--summary-json`` of replay or live); ``{}`` when no path is given."""
    if path is None:
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a colo-replay summary (a JSON object is expected)")
    return data
