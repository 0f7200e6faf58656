"""``ovdet`` entry point: subcommand dispatch; user errors become one line on stderr and exit status 2.

Exit statuses: 0 done; 2 bad input or settings (one line on stderr, no traceback); 3 done, but some inputs could not
be read and were skipped (``predict``, ``eval``, ``label``, ``stream`` of an image folder: listed on stderr); 130
interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM (what ``timeout`` and ``docker stop`` send) — in both cases
outputs are closed and hold the work done. Any other status is a bug (with a traceback).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import signal
import sys
import threading
import time
import weakref

from ..errors import OVDetError
from . import convert, label, predict, stream, train
from . import eval as eval_command

COMMANDS = [predict, stream, convert, train, eval_command, label]
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
_FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # the disk, not ovdet: one line, not a traceback


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's ``KeyboardInterrupt`` so every ``finally`` closes outputs."""


STOP = threading.Event()  # set by the first SIGINT/SIGTERM; long loops poll it (see ovdet.engine.train's should_stop)
_REPEAT_S = 2.0  # a second signal within this time is the same request (a double key press), not a new one
_RETRY_S = 0.05  # a signal that landed in a finaliser is raised again this much later, outside it
_first_signal: list[float] = []
_pending: list[int] = []  # the signal to raise again once out of the finaliser


def _stop_exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum: int, frame: object) -> None:
    # An exception raised from a signal handler can land inside a __del__ or weakref callback (DataLoader workers
    # shutting down), where Python only prints "Exception ignored". So the request is recorded in STOP (train polls
    # it) and raised again a moment later from a timer, outside the finaliser, so that every command stops; a repeat
    # within _REPEAT_S does not raise again into the cleanup of the first.
    now = time.monotonic()
    if STOP.is_set() and now - _first_signal[0] < _REPEAT_S:
        return
    STOP.set()
    _first_signal[:] = [now]
    if _in_finalizer(frame):
        _pending[:] = [signum]
        # POSIX, and only where main() installed the retry (elsewhere only the loops that poll STOP stop)
        if hasattr(signal, "setitimer") and signal.getsignal(signal.SIGALRM) is _on_alarm:
            signal.setitimer(signal.ITIMER_REAL, _RETRY_S)
        return
    raise _stop_exception(signum)


def _on_alarm(signum: int, frame: object) -> None:
    """The retry of a signal that landed in a finaliser: raised now, or later again if still inside one."""
    if not _pending:
        return
    if _in_finalizer(frame):
        signal.setitimer(signal.ITIMER_REAL, _RETRY_S)
        return
    raise _stop_exception(_pending.pop())


def stop_requested() -> bool:
    """For loops that poll (``train(should_stop=...)``): ``False``, or raises the exception of the signal received
    (:class:`Terminated` for SIGTERM, ``KeyboardInterrupt`` for SIGINT)."""
    if not STOP.is_set():
        return False
    signum = _pending.pop() if _pending else signal.SIGINT
    raise _stop_exception(signum)


def _in_finalizer(frame: object) -> bool:
    """Whether the signal interrupted a ``__del__`` or a weak-reference callback (garbage collection, e.g. a
    DataLoader shutting its workers down), directly or in a function one of them called."""
    while frame is not None:
        code = frame.f_code  # type: ignore[attr-defined]
        if code.co_name == "__del__" or (code.co_name == "remove" and code.co_filename == weakref.__file__):
            return True
        frame = frame.f_back  # type: ignore[attr-defined]
    return False


def _written(error: OSError) -> str:
    """The file a failed write was for, as the user knows it: the destination of a copy or rename (``filename2``; a
    copy names its source first) with every hidden temporary name (``.NAME.RANDOM.ovdet.tmp``) shown as ``NAME``."""
    from ..fileio import TEMP_SUFFIX

    path = os.fsdecode(error.filename2 or error.filename)
    parts = [re.sub(rf"^\.(.+)\.[^.]+{re.escape(TEMP_SUFFIX)}$", r"\1", part) for part in path.split(os.sep)]
    return os.sep.join(parts)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="ovdet",
        description="Open-vocabulary object detection: boxes for free-text classes.",
        epilog="Run 'ovdet COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"ovdet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that wait for work sleep instead of spinning: on a machine where other processes are busy,
    # spinning threads steal the cores the working ones need (measured: README, "Threads"). Read once, when torch
    # first loads, which is after this.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="ovdet: %(message)s")
    if not args.verbose:
        logging.getLogger("lvis").setLevel(logging.ERROR)  # "Assuming user provided the results in correct format."
    STOP.clear()
    _pending.clear()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:  # a job started with SIGINT ignored (nohup, `cmd &`) keeps ignoring it
            signal.signal(sig, _on_signal)
    if hasattr(signal, "SIGALRM"):
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        return int(args.func(args) or 0)
    except OVDetError as e:
        print(f"ovdet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in _FULL_OR_READ_ONLY:
            raise  # anything else is a bug: the traceback says where
        where = f" writing {_written(e)}" if e.filename else ""
        print(f"ovdet {args.command}: error: {e.strerror}{where}; free some space or write elsewhere (outputs "
              "written so far are complete and valid)", file=sys.stderr)  # fmt: skip
        return 2
    except Terminated:
        print(f"ovdet {args.command}: terminated (SIGTERM); outputs closed", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"ovdet {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
