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

import functools
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


def run_each(jobs: list) -> int:
    """Run the jobs [(label, job)], ``job()`` returning an exit status, one after the other: a single
    job ends as a script does (its expected error reaches main_guard); of several, an expected error
    of one is its one line, prefixed by its label, and the others go on.  Returns the worst status,
    after a line naming those that failed."""
    if len(jobs) == 1:
        return jobs[0][1]()
    statuses = {}
    for label, job in jobs:
        try:
            statuses[label] = job()
        except EXPECTED_ERRORS as err:
            message = one_line(err)
            print(f"error: {message if message.startswith(label) else f'{label}: {message}'}", file=sys.stderr,
                  flush=True)
            statuses[label] = EXIT_BAD_INPUT
        except SystemExit as stop:             # a job that stops with its own message (analysis.analyze)
            if isinstance(stop.code, str):
                print(stop.code, file=sys.stderr, flush=True)
            statuses[label] = stop.code if isinstance(stop.code, int) else 1
    failed = [label for label, status in statuses.items() if status]
    if failed:
        print(f"{len(failed)} of {len(jobs)} failed (see above): {', '.join(failed)}", file=sys.stderr, flush=True)
    return max(statuses.values())
