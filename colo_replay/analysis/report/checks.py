"""The report's JSON inputs (a saved run's summary, a baseline report, a sweep), read by the
bad-input contract: what is wrong raises ``ValueError`` with one line naming the file and where in
it, before any work is done on it.

* ``read_text``: the file as UTF-8 (a byte-order mark allowed); anything else is
  ``FILE: not UTF-8 text (byte offset N)``, N the first byte that is not.
* ``read_json``: the JSON document; ``FILE: not JSON: <why> at line L column C (byte offset N)``,
  an empty file, a document nested too deep (Python's parser would raise RecursionError), an
  integer too long to read are each one line too.
* ``Doc``: checks the shape of a document, key by key: ``FILE: numbers.checkpoints: expected a
  number, got a list``, ``FILE: rows[3].pair: missing``.  Numbers are finite (JSON's
  ``Infinity`` and ``NaN`` are refused) and within +-2^63, so that nothing downstream overflows.
* ``schema_of``: the ``"family/N"`` schema string of a document, and the line refusing a newer
  version or a document of another family (a report given as a summary, say).
"""

from __future__ import annotations

import json
import math

__all__ = ["read_text", "read_json", "utf8_offset", "Doc", "kind_of", "number_problem", "schema_of", "shown"]

_BOM = b"\xef\xbb\xbf"
_INT_LIMIT = 2**63


def read_text(path) -> str:
    """The file's text; ValueError ``FILE: not UTF-8 text (byte offset N)`` when it is not UTF-8."""
    with open(path, "rb") as fh:
        data = fh.read()
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte offset {exc.start + skip})") from None


def utf8_offset(path, chunk: int = 1 << 20) -> int | None:
    """The byte offset of the first byte of ``path`` that is not UTF-8 (None: all of it is), read
    a chunk at a time (for a large text file a reader failed on)."""
    import codecs

    dec = codecs.getincrementaldecoder("utf-8")()
    pos = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            held = len(dec.getstate()[0])         # the start of a character cut by the last block
            try:
                dec.decode(block, final=not block)
            except UnicodeDecodeError as exc:     # exc.start counts from the held bytes
                return pos - held + exc.start
            if not block:
                return None
            pos += len(block)


def read_json(path, what: str = "a JSON document"):
    """The JSON document in ``path``; ValueError naming the file and the place when it is not one."""
    raw = read_text(path)
    if not raw.strip():
        raise ValueError(f"{path}: empty file ({what} is expected)")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        offset = len(raw[:exc.pos].encode("utf-8"))
        raise ValueError(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
                         f"(byte offset {offset})") from None
    except RecursionError:
        raise ValueError(f"{path}: not readable JSON: nested too deep") from None
    except ValueError as exc:          # an integer of more digits than Python converts
        raise ValueError(f"{path}: not readable JSON: {str(exc).splitlines()[0]}") from None


def kind_of(v) -> str:
    """What a JSON value is, in words: null, true/false, a number, a string, a list, an object."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def number_problem(v, integer: bool = False, lo=None, hi=None) -> str | None:
    """Why ``v`` is not the number wanted, or None."""
    want = "an integer" if integer else "a number"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"expected {want}, got {kind_of(v)}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return f"expected {want}, got {'NaN' if math.isnan(v) else 'Infinity' if v > 0 else '-Infinity'}"
        if integer and v != int(v):
            return f"expected an integer, got {v!r}"
    elif not -_INT_LIMIT < v < _INT_LIMIT:
        return f"expected {want} within +-2^63, got one of {len(str(abs(v)))} digits"
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        return f"{v!r} is out of range ({lo if lo is not None else '-inf'} to {hi if hi is not None else 'inf'})"
    return None


class Doc:
    """Shape checks of one JSON document (``path`` names it in every message).

    ``where`` is a key path: ``numbers.checkpoints``, ``rows[3].pair`` (``Doc.key``, ``Doc.item``
    build them).  Each check returns the value, ``None`` for an absent or null one when allowed."""

    def __init__(self, path):
        self.path = path

    def fail(self, where: str, why: str):
        raise ValueError(f"{self.path}: {where}: {why}" if where else f"{self.path}: {why}")

    @staticmethod
    def key(where: str, key: str) -> str:
        return f"{where}.{key}" if where else str(key)

    @staticmethod
    def item(where: str, i: int) -> str:
        return f"{where}[{i}]"

    def get(self, obj: dict, key: str, where: str, required: bool):
        """``obj[key]``, None when absent (an error when ``required``)."""
        if key not in obj:
            if required:
                self.fail(self.key(where, key), "missing")
            return None
        return obj[key]

    def _typed(self, obj, key, where, required, null, types, expected: str):
        """``obj[key]`` when it is one of ``types`` (None when absent or null and ``null``)."""
        v = self.get(obj, key, where, required)
        if v is None and null:
            return None
        if not isinstance(v, types):
            self.fail(self.key(where, key), f"expected {expected}, got {kind_of(v)}")
        return v

    def object(self, obj, key, where="", required=False, null=True) -> dict | None:
        return self._typed(obj, key, where, required, null, dict, "an object")

    def list(self, obj, key, where="", required=False, null=True) -> list | None:
        return self._typed(obj, key, where, required, null, list, "a list")

    def string(self, obj, key, where="", required=False, null=True) -> str | None:
        return self._typed(obj, key, where, required, null, str, "a string")

    def boolean(self, obj, key, where="", required=False, null=True) -> bool | None:
        return self._typed(obj, key, where, required, null, bool, "true or false")

    def number(self, obj, key, where="", required=False, null=True, integer=False, lo=None, hi=None):
        v = self.get(obj, key, where, required)
        if v is None and null:
            return None
        why = number_problem(v, integer, lo, hi)
        if why:
            self.fail(self.key(where, key), why)
        return v

    def integer(self, obj, key, where="", required=False, null=True, lo=None, hi=None):
        return self.number(obj, key, where, required, null, integer=True, lo=lo, hi=hi)

    def strings(self, obj, key, where="") -> list | None:
        """A list of strings (or null / absent)."""
        items = self.list(obj, key, where)
        for i, s in enumerate(items or ()):
            if not isinstance(s, str):
                self.fail(self.item(self.key(where, key), i), f"expected a string, got {kind_of(s)}")
        return items

    def objects(self, obj, key, where="", required=False) -> list | None:
        """A list of objects (or null / absent unless ``required``)."""
        items = self.list(obj, key, where, required)
        for i, o in enumerate(items or ()):
            if not isinstance(o, dict):
                self.fail(self.item(self.key(where, key), i), f"expected an object, got {kind_of(o)}")
        return items


def shown(text, limit: int = 60) -> str:
    """A string from a file, fit for a one-line message: quoted and escaped when it holds a
    control character, cut at ``limit`` characters."""
    text = str(text)
    cut = text[:limit] + ("..." if len(text) > limit else "")
    return repr(cut) if not cut.isprintable() else cut


def schema_of(doc: Doc, data: dict, family: str, version: int, what: str, required: bool = True) -> str | None:
    """``data["schema"]`` checked to be ``family/version`` (``family/version.N`` too: within a
    major version keys are only added): a string, of this family (another colo-replay document
    is named as such), not newer.  None when absent and not ``required``."""
    if "schema" not in data and not required:
        return None
    if "schema" not in data:
        doc.fail("", f"not {what} (no \"schema\": \"{family}/{version}\")")
    schema = doc.string(data, "schema", null=False)
    name, _, ver = schema.partition("/")
    if name != family:
        other = (f"a {shown(name)} JSON (schema {shown(schema)})" if name.startswith("colo-replay-")
                 else f"schema {shown(schema)}")
        doc.fail("", f"{other}, not {what}")
    major = ver.split(".", 1)[0]
    if major != str(version):
        newer = major.isdigit() and len(major) < 10 and int(major) > version
        doc.fail("schema", f"{shown(schema)} is {'newer than' if newer else 'not'} what this version reads "
                           f"({family}/{version})")
    return schema
