"""The command-line entry point's signal handling."""

from __future__ import annotations

import signal
import sys
import types
import weakref

import pytest

from ovdet.cli import main as cli_main


def _inner(frames: list) -> None:
    frames.append(sys._getframe())


def _outer(frames: list) -> None:
    _inner(frames)


def _frame_of(name: str, filename: str | None = None):
    """A real frame of a function that a function called ``name`` (defined in ``filename``) called."""
    frames: list = []
    code = _outer.__code__.replace(co_name=name, co_filename=filename or _outer.__code__.co_filename)
    types.FunctionType(code, globals())(frames)
    return frames[0]


@pytest.mark.parametrize("name, filename", [("__del__", None), ("remove", weakref.__file__)])
def test_a_signal_inside_a_finalizer_stops_through_stop_not_an_ignored_exception(name, filename):
    # a Ctrl-C landing in WeakKeyDictionary's callback while a DataLoader shut down printed "Exception ignored in:
    # <function WeakKeyDictionary.__init__.<locals>.remove ...> KeyboardInterrupt": Python cannot raise from there
    try:
        cli_main.STOP.clear()
        cli_main._on_signal(signal.SIGINT, _frame_of(name, filename))  # returns: loops that poll STOP stop
        assert cli_main.STOP.is_set()
        cli_main.STOP.clear()
        with pytest.raises(cli_main.Terminated):  # anywhere else it raises, as before
            cli_main._on_signal(signal.SIGTERM, _frame_of("remove"))
    finally:
        cli_main.STOP.clear()
        cli_main._pending.clear()


def test_a_signal_lost_in_a_finalizer_is_raised_again_outside_it_as_itself():
    """A SIGTERM that landed in a finaliser still stops any command, a moment later, with SIGTERM's exit path
    (Terminated: exit 143, not Ctrl-C's 130), and train's poll raises the same."""
    import time

    previous = signal.signal(signal.SIGALRM, cli_main._on_alarm)
    try:
        cli_main.STOP.clear()
        cli_main._pending.clear()
        cli_main._on_signal(signal.SIGTERM, _frame_of("__del__"))  # swallowed there ...
        with pytest.raises(cli_main.Terminated):  # ... and raised again by the timer
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.01)
        cli_main.STOP.clear()
        signal.setitimer(signal.ITIMER_REAL, 0)
        cli_main._on_signal(signal.SIGTERM, _frame_of("__del__"))
        signal.setitimer(signal.ITIMER_REAL, 0)  # the poll comes first this time
        with pytest.raises(cli_main.Terminated):
            cli_main.stop_requested()
        cli_main.STOP.clear()
        assert cli_main.stop_requested() is False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        cli_main.STOP.clear()
        cli_main._pending.clear()


@pytest.mark.parametrize(
    "error, shown",
    [  # a copy names its source first (shutil), the destination second; temporaries are named for what they become
        (OSError(28, "No space left on device", "/photos/a.jpg", None, "/ds/images/a.jpg"), "writing /ds/images/a.jpg"),
        (OSError(28, "No space left on device", "/runs/r/.last.gt8hqnmx.ovdet.tmp/model.safetensors"),
         "writing /runs/r/last/model.safetensors"),  # fmt: skip
        (OSError(30, "Read-only file system", "/o/.out.json.a_b1.ovdet.tmp"), "writing /o/out.json"),
        (OSError(28, "No space left on device", "/photos/a.jpg", None, "/ds/images/train/.a.jpg.4242.ovdet.tmp"),
         "writing /ds/images/train/a.jpg"),  # a dataset's image, copied to its temporary  # fmt: skip
    ],
)
def test_a_full_or_read_only_disk_names_the_file_being_written_not_a_source_or_a_temporary(
    error, shown, monkeypatch, capsys
):
    from ovdet.cli import predict

    def fail(args):
        raise error

    monkeypatch.setattr(predict, "run", fail)
    assert cli_main.main(["predict", "x.jpg", "--classes", "a"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"error: {error.strerror} {shown};" in err, err
