"""Output files that never replace an input and are never left half written.

* ``check_outputs(outputs, inputs)``: before any work, no output path may resolve to one of the
  command's inputs (a capture, a saved timeline, a baseline, a manifest, a checkpoint file),
  symlinks followed (``os.path.samefile``), nor two outputs to the same file.  ``report P S -o
  P`` replaced the capture with HTML, without a word.
* ``replacing(path)``: a file is written as a temporary file beside its target (same
  directory, so same file system) and renamed over it only once complete (``os.replace``,
  atomic on POSIX).  A run that fails or is interrupted (Ctrl-C, a full disk, a kill) leaves
  the file that was there, not half a new one; a partial result that a command writes on
  purpose (a replay stopped by a read error, marked partial) is complete as a file and is
  renamed into place like any other.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager


def _is_stdout(path) -> bool:
    return path is None or (isinstance(path, str) and path == "-")


def _file(path) -> bool:
    """A path naming a file (not standard output, an open stream or a reader)."""
    return (isinstance(path, (str, bytes)) or hasattr(path, "__fspath__")) and not _is_stdout(path) \
        and bool(os.fspath(path))


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:              # one of them does not exist (an output not written yet)
        return False


def check_outputs(outputs: dict, inputs: dict) -> None:
    """ValueError when an output would replace an input or another output.

    ``outputs``: option -> path (``"-o"`` -> ``"r.html"``; None or ``"-"``: not a file);
    ``inputs``: what -> path or list of paths (``"PRIMARY"`` -> ``"p.pcap"``, ``"--pairs"``
    captures -> [...]).  Paths may be ``os.PathLike``."""
    outs = [(opt, os.fspath(p)) for opt, p in outputs.items() if _file(p)]
    ins = []
    for what, paths in inputs.items():
        if paths is None:
            continue
        for p in (paths if isinstance(paths, (list, tuple)) else [paths]):
            if _file(p):
                ins.append((what, os.fspath(p)))
    for opt, out in outs:
        for what, inp in ins:
            if _same(out, inp):
                raise ValueError(f"{opt} {out} is the {what} {inp}: writing it would destroy the input "
                                 f"(give another output path)")
    for i, (opt, out) in enumerate(outs):
        for opt2, out2 in outs[i + 1:]:
            if os.path.realpath(out) == os.path.realpath(out2) or _same(out, out2):
                raise ValueError(f"{opt} and {opt2} name the same file ({out}): give each output its own path")


def mark_partial(path: str, partial: str | None, suffix: str = ".partial") -> None:
    """The sidecar ``<path>.partial`` of a text table (CSV, JSON Lines) holding the line that says
    why it is partial; a complete write (``partial`` None) removes a stale one."""
    sidecar = path + suffix
    if partial is not None:
        with replacing(sidecar, "w", encoding="utf-8") as fh:
            fh.write(partial + "\n")
    elif os.path.exists(sidecar):
        os.remove(sidecar)


def temporary_beside(path: str) -> str:
    """A new, empty file's name in ``path``'s directory (``.NAME.XXXX.tmp``), for a writer that
    must be given a path (pyarrow, matplotlib); ``commit`` or ``discard`` it."""
    directory, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    return tmp


def commit(tmp: str, path: str) -> None:
    """Put the finished temporary file ``tmp`` where ``path`` is, with the permissions of the
    file it replaces, or those a new file gets (mkstemp makes it 0600)."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        discard(tmp)
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc


def discard(tmp: str) -> None:
    try:
        os.remove(tmp)
    except OSError:
        pass


def replace_target(path) -> str | None:
    """Where a replacing write renames to: the file ``path`` names (a symlink's target, so that
    the link stays a link), or None when that is not a regular file (a device such as
    /dev/stdout or /dev/full, a FIFO): those are written in place, as they were, since renaming
    over them would replace the device itself."""
    real = os.path.realpath(os.fspath(path))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real
    import stat
    return real if stat.S_ISREG(st.st_mode) else None


@contextmanager
def replacing_path(path):
    """Yield a temporary path beside ``path``; once the block ends without an exception the
    file written there replaces ``path``, else it is removed and ``path`` is untouched.  (A path
    that is not a regular file, a device or a FIFO, is yielded itself.)"""
    path = os.fspath(path)
    target = replace_target(path)
    if target is None:
        yield path
        return
    tmp = temporary_beside(target)
    try:
        yield tmp
    except BaseException:
        discard(tmp)
        raise
    commit(tmp, target)


@contextmanager
def replacing(path, mode: str = "w", **open_options):
    """``open(path, mode)`` for writing, as a temporary file that replaces ``path`` only when the
    block ends without an exception.  OSErrors name ``path``, not the temporary file."""
    path = os.fspath(path)
    target = replace_target(path)
    if target is None:                      # a device or a FIFO: written in place
        with open(path, mode, **open_options) as fh:
            yield fh
        return
    try:
        tmp = temporary_beside(target)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from exc
    try:
        with open(tmp, mode, **open_options) as fh:
            yield fh
    except OSError as exc:
        discard(tmp)
        if exc.filename in (None, tmp):         # a write error names no file; say which one
            raise OSError(exc.errno, exc.strerror, path) from exc
        raise
    except BaseException:
        discard(tmp)
        raise
    try:
        commit(tmp, target)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from exc
