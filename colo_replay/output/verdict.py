"""The exit-code contract, in one place, for every command (replay, verify, live, and those to
come); the command line and the API (``LiveRun.exit_status``) both ask ``exit_status``.

* 0   colo-compare requested no checkpoint, and every threshold holds;
* 1   at least one checkpoint request, of any cause (a miscompare, an expired frame, ...), or
      a threshold exceeded (``--max-checkpoints``, ``--max-held-p99``, a verify mismatch);
* 2   bad input or usage, a read error (the results are partial), or nothing was compared
      (one side had no frame after reading, filtering or guest selection, or no primary frame
      ever met a secondary one): ``--allow-empty`` turns that last case off;
* 130 interrupted (SIGINT): the summary and the partial timeline are still written.
"""

from __future__ import annotations

EXIT_CLEAN, EXIT_DIVERGED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES_HELP = ("Exit status: 0 no checkpoint request and every threshold holds; 1 checkpoint requests "
                   "(any cause) or a threshold exceeded; 2 bad input or usage, a read error, or nothing "
                   "compared (see --allow-empty); 130 interrupted (summary and partial timeline still "
                   "written).")


def exit_status(*, requests: int = 0, exceeded: bool = False, nothing_compared: str | None = None,
                allow_empty: bool = False, error: str | None = None, interrupted: bool = False) -> int:
    """The exit status of a run: ``requests`` checkpoint requests, a threshold ``exceeded``,
    ``nothing_compared`` (why, or None), a read ``error`` (partial results), ``interrupted``."""
    if interrupted:
        return EXIT_INTERRUPTED
    if error is not None:
        return EXIT_BAD_INPUT
    if nothing_compared is not None and not allow_empty:
        return EXIT_BAD_INPUT
    if requests or exceeded:
        return EXIT_DIVERGED
    return EXIT_CLEAN


def verdict_line(requests_by_cause: dict, nothing_compared: str | None = None, error: str | None = None,
                 interrupted: bool = False) -> str:
    """The summary's one-line verdict (before thresholds, which the commands add)."""
    if interrupted:
        return "INTERRUPTED: results up to the interruption"
    if error is not None:
        return "PARTIAL: a read error stopped the replay (results up to it)"
    n = sum(requests_by_cause.values())
    if n:
        causes = ", ".join(f"{k} {v}" for k, v in requests_by_cause.items())
        line = f"CHECKPOINT REQUESTED: {n} request{'s' if n != 1 else ''} ({causes})"
    else:
        line = "CLEAN: colo-compare requested no checkpoint"
    if nothing_compared is not None:
        return f"NOTHING COMPARED: {nothing_compared}; {line}"
    return line
