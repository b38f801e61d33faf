"""The one way every script ends on bad input: one line on stderr and exit status 2.

    @main_guard
    def main(argv=None) -> int:
        args = parser.parse_args(argv)
        cfg = config_from_args(args)      # a ConfigError here ...
        ...                               # ... an InputError or an OSError (full disk, read-only
        return 0                          # root, a lock held by another run) anywhere below

``main_guard`` turns ConfigError (a setting), InputError (a file's content) -- both
io_utils.UserError -- and OSError (the file system) into ``error: <message>`` and status 2, the status the Slurm scripts
and run_pipeline.py
read as "bad input, do not retry".  Anything else is a bug and keeps its traceback (a bare
ValueError is not caught).
"""
from __future__ import annotations

import contextlib
import functools
import io
import multiprocessing
import os
import sys

from io_utils import UserError

EXIT_BAD_INPUT = 2
EXPECTED_ERRORS = (UserError, OSError)       # ConfigError and InputError are UserErrors


def one_line(err: BaseException) -> str:
    """The message of an expected error on one line."""
    return " ".join(str(err).split()) or type(err).__name__


def add_wait_lock_arg(parser, what: str) -> None:
    """--wait-lock: queue behind another process that holds this stage's lock, instead of stopping."""
    parser.add_argument("--wait-lock", action="store_true",
                        help=f"if another process {what}, wait for it instead of stopping")


def main_guard(main):
    """Decorator of a script's ``main(argv=None)``: expected errors -> one line, exit status 2."""
    @functools.wraps(main)
    def guarded(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except EXPECTED_ERRORS as err:
            print(f"error: {one_line(err)}", file=sys.stderr, flush=True)
            return EXIT_BAD_INPUT
    return guarded


def run_each(jobs: list, workers: int = 1) -> int:
    """Run the jobs [(label, job)], ``job()`` returning an exit status: a single job ends as a script
    does (its expected error reaches main_guard); of several, an expected error of one is its one
    line, prefixed by its label, and the others go on.  With ``workers`` > 1 they run in that many
    forked processes, each job's output printed when it is done, in the jobs' order.  Returns the
    worst status, after a line naming those that failed."""
    if len(jobs) == 1:
        return jobs[0][1]()
    global _JOBS
    if workers > 1:
        _JOBS = jobs
        try:
            with multiprocessing.get_context("fork").Pool(min(workers, len(jobs))) as pool:
                statuses = []
                for status, out, err in pool.imap(_captured, range(len(jobs))):
                    sys.stdout.write(out)
                    sys.stderr.write(err)
                    statuses.append(status)
        finally:
            _JOBS = []
    else:
        statuses = [_attempt(label, job) for label, job in jobs]
    failed = [label for (label, _), status in zip(jobs, statuses) if status]
    if failed:
        print(f"{len(failed)} of {len(jobs)} failed (see above): {', '.join(failed)}", file=sys.stderr, flush=True)
    return max(statuses)


_JOBS: list = []            # run_each's jobs, for its forked workers


def _attempt(label: str, job) -> int:
    """One job of several: its status, an expected error reported in one line."""
    try:
        return job()
    except EXPECTED_ERRORS as err:
        message = one_line(err)
        print(f"error: {message if message.startswith(label) else f'{label}: {message}'}", file=sys.stderr,
              flush=True)
        return EXIT_BAD_INPUT
    except SystemExit as stop:             # a job that stops with its own message (analysis.analyze)
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr, flush=True)
        return stop.code if isinstance(stop.code, int) else 1


def _captured(index: int) -> tuple[int, str, str]:
    """(status, stdout, stderr) of the job ``index`` of run_each, in a worker."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = _attempt(*_JOBS[index])
    return status, out.getvalue(), err.getvalue()


def usable_cores() -> int:
    """The cores this process may run on (its affinity: what Slurm or taskset gave it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
