"""The error contract of every command-line entry point (instructions/errors.md).

Exit status:

* ``0``: done;
* ``1``: the run failed, or finished with failures it recorded (the partial outputs are kept and
  the last line says where they are);
* ``2``: bad input or arguments: one line ``prog: error: ...`` on stderr, found before any model is
  loaded wherever the input can be checked up front;
* ``130``: interrupted (Ctrl-C or SIGTERM); what was written so far is kept and said.

No traceback is printed unless ``--debug`` is given (or ``AHA_DEBUG=1``): then the exception
propagates as Python prints it.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import types
from typing import Callable

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

# what a bad input raises: a value the code refuses, a path that is missing or of the wrong kind
BAD_INPUT = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError, PermissionError)

MAX_MESSAGE = 600


def one_line(e: BaseException | str) -> str:
    """The message of ``e`` on one line (long ones shortened)."""
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)) \
            and getattr(e, "filename", None) and str(e.filename) not in text:
        text = f"{text}: {e.filename}"
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def debug_wanted(argv: list[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("AHA_DEBUG", "") not in ("", "0")


def add_debug_flag(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--debug", action="store_true", help="on a failure, show the Python traceback (also AHA_DEBUG=1)")


def _one_line_error(self: argparse.ArgumentParser, message: str):
    self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {one_line(message)} (see --help)\n")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the contract's one-line error (not the whole usage block) and exit 2."""

    error = _one_line_error


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give an existing parser (e.g. HfArgumentParser) the one-line error of the contract."""
    parser.error = types.MethodType(_one_line_error, parser)
    return parser


def run_cli(prog: str, body: Callable[[], int | None], *, debug: bool = False,
            outputs: Callable[[], str | None] | str | None = None) -> int:
    """Run ``body`` under the contract; returns the exit status.

    ``outputs``: where partial outputs are (a path, or a function giving it once known), named
    when the run fails or is interrupted."""
    def where() -> str:
        try:
            place = outputs() if callable(outputs) else outputs
        except Exception:  # never let the report of a failure fail
            place = None
        return f"; partial outputs are in {place}" if place else ""

    with _sigterm_as_interrupt():
        try:
            rc = body()
            return EXIT_OK if rc is None else int(rc)
        except KeyboardInterrupt:
            if debug:
                raise
            print(f"{prog}: interrupted{where()}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except SystemExit as e:
            if isinstance(e.code, str) and not debug:  # raise SystemExit("message"): a refused input
                print(f"{prog}: error: {one_line(e.code)}", file=sys.stderr)
                return EXIT_BAD_INPUT
            raise
        except BAD_INPUT as e:
            if debug:
                raise
            print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except Exception as e:  # anything else is a failure of the run, not of the input
            if debug:
                raise
            print(f"{prog}: failed: {type(e).__name__}: {one_line(e)}{where()} (rerun with --debug for the traceback)",
                  file=sys.stderr)
            return EXIT_FAILED


def entry(prog: str, main: Callable, argv: list[str] | None = None,
          outputs: Callable[[], str | None] | str | None = None) -> int:
    """``sys.exit(entry("prog", main))``: the contract around a ``main(argv)`` that does not apply
    it itself (a non-integer return counts as success). ``--debug`` is taken out of ``argv``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_wanted(argv)
    argv = [a for a in argv if a != "--debug"]

    def body():
        rc = main(argv)
        return rc if isinstance(rc, int) and not isinstance(rc, bool) else EXIT_OK

    return run_cli(prog, body, debug=debug, outputs=outputs)


class _sigterm_as_interrupt:
    """SIGTERM (a scheduler or ``kill``) raises KeyboardInterrupt, so the run records its end."""

    def __enter__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            try:
                self._old = signal.signal(signal.SIGTERM, self._handler)
            except (ValueError, OSError):
                self._old = None
        return self

    @staticmethod
    def _handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


# ------------------------------------------------------------------------------ value checks


def check_number(value, flag: str, *, minimum: float | None = None, above: float | None = None,
                 maximum: float | None = None, integer: bool = False) -> None:
    """Refuse a non-finite, out-of-range (or, with ``integer``, fractional) flag value; None passes."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{flag} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{flag} must be a finite number, got {value!r}")
    if integer and int(value) != value:
        raise ValueError(f"{flag} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{flag} must be >= {minimum:g}, got {value:g}")
    if above is not None and not value > above:
        raise ValueError(f"{flag} must be > {above:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{flag} must be <= {maximum:g}, got {value:g}")


def check_output_dir(path, flag: str) -> None:
    """An output folder that exists as a folder or can be created (not a file, not under a file)."""
    from pathlib import Path

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {p} exists and is not a folder")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {p}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK) and not p.exists():
                raise ValueError(f"{flag} {p}: {parent} is not writable")
            break
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {p} is not writable")


def check_output_file(path, flag: str) -> None:
    """An output file whose folder can hold it (and that is not itself a folder)."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {p} is a folder, not a file")
    check_output_dir(p.parent if str(p.parent) else ".", f"{flag} (its folder)")
