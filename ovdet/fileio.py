"""Safe writes: nothing the user wrote is replaced, and a crash or a kill never leaves a half-written output.

The rules every output of ovdet follows (models, run folders, annotated images, JSON, videos, exports):

- **Checked before the work starts.** :func:`check_output_file` and :func:`check_output_dir` say in one error what is
  wrong with a path (a folder where a file goes, a file where a folder goes, a folder ovdet did not write, a place
  that cannot be written) before any model is loaded or image read.
- **A folder is replaced only if ovdet wrote it** (it is empty, it holds ovdet's marker file or is recognised as
  ovdet's, e.g. a saved model), or the caller passes ``overwrite=True``. A file the user names as an output is
  replaced as a whole.
- **Atomic.** Files and folders are written to a hidden temporary sibling and renamed into place; no temporary file
  or folder survives a failure, Ctrl-C or SIGTERM. Every temporary name is ``.<name>.<random>`` +
  :data:`TEMP_SUFFIX`, so what a SIGKILL leaves can be told from the user's own files and swept by the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import OutputError

__all__ = [
    "MARKER",
    "TEMP_SUFFIX",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_folder",
    "check_output_file",
    "check_output_dir",
    "prepare_output_dir",
    "has_marker",
    "write_marker",
    "JsonArrayWriter",
    "JsonLinesWriter",
    "save_safetensors",
]

MARKER = ".ovdet.json"  # written into folders ovdet creates for its outputs, so a later run knows it may reuse them
# ends every temporary file and folder ovdet writes (a run sweeps only these: a user's ".notes.tmp" is not one)
TEMP_SUFFIX = ".ovdet.tmp"
Owned = Callable[[Path], bool]


def _umask_mode(mode: int) -> int:
    # temporary files are created private (0600/0700); give the final ones the permissions a plain open() would
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _absolute(path: str | os.PathLike) -> Path:
    # "." and "out/.." have no name of their own; their temporary siblings need the real one
    return Path(os.path.abspath(Path(path).expanduser()))


def _probe_writable(folder: Path, what: str, path: Path) -> None:
    """Create and remove a temporary file in the nearest existing ancestor of ``folder`` (a permission check that
    also sees read-only file systems and ACLs, which ``os.access`` does not)."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {what} {path}: {existing} is a file, not a folder; choose another path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ovdet-probe.", suffix=TEMP_SUFFIX, dir=existing)
    except OSError as e:
        raise OutputError(
            f"cannot write {what} {path}: {existing} is not writable ({e.strerror or e}); choose a folder you can "
            "write to"
        ) from None
    os.close(fd)
    os.unlink(tmp)


def check_output_file(path: str | os.PathLike, *, what: str = "output", example: str = "out.json") -> Path:
    """Check that ``path`` can be written as a file (it is replaced if it exists); returns it as an absolute path.

    Raises:
        OutputError: ``path`` is a folder, sits below a file, or its folder cannot be written.
    """
    path = _absolute(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file path (e.g. {path / example})")
    _probe_writable(path.parent, what, path)
    return path


def has_marker(kind: str | None = None) -> Owned:
    """A predicate: does a folder hold ovdet's marker (of ``kind``, or of any kind when ``None``)?"""

    def owned(folder: Path) -> bool:
        try:
            info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(info, dict) and (kind is None or info.get("kind") == kind)

    return owned


def write_marker(folder: str | os.PathLike, kind: str) -> None:
    """Record in ``folder`` that ovdet wrote it, for ``kind`` of output (e.g. ``"predict"``)."""
    from . import __version__

    (Path(folder) / MARKER).write_text(json.dumps({"kind": kind, "ovdet_version": __version__}) + "\n")


def _foreign(folder: Path, owned: Owned | None) -> list[str]:
    """The entries that make ``folder`` not ovdet's to reuse or replace (empty when it is), named without ovdet's
    own files (its marker, a saved model's files) so the message shows what is the user's."""
    entries = sorted(p.name for p in folder.iterdir())
    if not entries or (owned is not None and owned(folder)):
        return []
    ours = {MARKER, "config.json", "model.safetensors", "train_state.safetensors", "train_state.json"}
    return [e for e in entries if e not in ours] or entries


def check_output_dir(
    path: str | os.PathLike,
    *,
    what: str = "output folder",
    owned: Owned | None = None,
    overwrite: bool = False,
    fix: str = "pass overwrite=True (--overwrite) to write there anyway",
) -> Path:
    """Check that ``path`` can be used as an output folder; returns it as an absolute path.

    A folder that exists must be empty, or be ovdet's (``owned(path)`` is true), or ``overwrite`` must be given.

    Raises:
        OutputError: ``path`` is a file, holds files ovdet did not write (named in the message), or cannot be
            written.
    """
    path = _absolute(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file; give a folder path")
    if path.is_dir() and not overwrite:
        foreign = _foreign(path, owned)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise OutputError(f"{what} {path} already holds files ovdet did not write ({shown}); choose a new or "
                              f"empty folder, or {fix}")  # fmt: skip
    _probe_writable(path, what, path)
    return path


def prepare_output_dir(
    path: str | os.PathLike, *, kind: str, what: str = "output folder", overwrite: bool = False
) -> Path:
    """Create (or reuse) an output folder that ovdet writes files into, checked by :func:`check_output_dir`, and
    mark it as ovdet's so that the next run may write there again. Returns the absolute path."""
    path = check_output_dir(path, what=what, owned=has_marker(kind), overwrite=overwrite)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MARKER).exists():
        write_marker(path, kind)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = _absolute(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode(0o666))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_folder(
    path: str | os.PathLike, *, owned: Owned | None = None, overwrite: bool = False, what: str = "output folder"
) -> Iterator[Path]:
    """Build a folder in a temporary sibling and swap it into place only when the block succeeds.

    Yields the temporary folder to write into. ``path`` is checked first (:func:`check_output_dir`: an existing
    folder is replaced only if it is empty, ``owned(path)`` is true, or ``overwrite``); if the block raises, ``path``
    is left exactly as it was and the temporary folder is removed.

    Raises:
        OutputError: ``path`` may not be replaced or cannot be written (raised before the block runs).
    """
    path = check_output_dir(path, what=what, owned=owned, overwrite=overwrite)
    _probe_writable(path.parent, what, path)  # the temporary sibling and the swap happen there
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o777))
        for child in tmp.rglob("*"):
            os.chmod(child, _umask_mode(0o777 if child.is_dir() else 0o666))
        if path.exists():
            here = Path(os.getcwd())
            inside = here == path or path in here.parents  # e.g. model.save(".")
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "previous")  # moved aside, not deleted, until the new one is in place
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old / "previous", path)
                raise
            finally:
                if inside and here.exists():
                    os.chdir(here)  # the process stood in the folder just replaced: stand in the new one instead
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the swap succeeded


def save_safetensors(tensors: dict[str, Any], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """safetensors' ``save_file`` (torch tensors), with a full disk reported as the ``OSError`` it is: safetensors
    raises its own error type for it, which would otherwise surface as a traceback instead of one line."""
    import errno

    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as e:
        if "No space left" in str(e):
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from e
        raise


_write = os.write  # the one system call that writes records (a test simulates a disk that fills up through it)


def _append(fd: int, data: bytes, size: int) -> int:
    """Write all of ``data`` at the end of ``fd`` (whose first ``size`` bytes are whole records); returns the new size.
    If the write fails part-way (a full disk: ``ENOSPC``), the file is cut back to ``size`` and the error raised, so
    no torn record is left behind."""
    view = memoryview(data)
    try:
        while view:
            view = view[_write(fd, view) :]
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
            os.lseek(fd, size, os.SEEK_SET)
        raise
    return size + len(data)


class JsonLinesWriter:
    """JSON lines written record by record, straight to ``path`` (readable as they come, e.g. with ``tail -f``).

    Each line is written whole or not at all (see :func:`_append`): after an error, a full disk, Ctrl-C or SIGTERM
    the file holds one valid JSON object per line for every record written.

    Args:
        path: The file to write (replaced if it exists; checked with :func:`check_output_file`).
    """

    def __init__(self, path: str | os.PathLike, *, what: str = "JSON lines output"):
        self.path = check_output_file(path, what=what, example="out.jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self._size = 0
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)

    def write(self, record: Any) -> None:
        """Append one JSON-serialisable record as a line."""
        assert self._fd is not None, "write after close"
        line = json.dumps(record, ensure_ascii=False) + "\n"
        self._size = _append(self._fd, line.encode("utf-8"), self._size)
        self.count += 1

    def close(self) -> None:
        """Close the file (once; later calls do nothing)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> JsonLinesWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class JsonArrayWriter:
    """A JSON array written record by record, valid at every stop.

    Records go to a hidden temporary sibling as they come; :meth:`close` ends the array and renames the file into
    place. Close it in a ``finally`` (or use ``with``): after an error, Ctrl-C or SIGTERM the file then holds a valid
    array of every record written so far. Only a kill that runs no Python code (SIGKILL) leaves the temporary file.

    Args:
        path: The JSON file to write (checked with :func:`check_output_file`).
        indent: Indentation of each record (``None``: one record per line).
    """

    def __init__(self, path: str | os.PathLike, *, indent: int | None = None, what: str = "JSON output"):
        self.path = check_output_file(path, what=what)
        self.count = 0
        self._indent = indent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=TEMP_SUFFIX, dir=self.path.parent)
        self._tmp = Path(tmp)
        self._fd: int | None = fd
        self._size = 0  # bytes of whole records in the file: a failed write is cut back to it
        self._size = _append(fd, b"[", self._size)

    def write(self, record: Any) -> None:
        """Append one JSON-serialisable record, whole or not at all (a write that fails, e.g. on a full disk, is
        cut back out of the file before the error is raised, so the records before it still close into valid JSON).
        """
        assert self._fd is not None, "write after close"
        text = json.dumps(record, indent=self._indent, ensure_ascii=False)
        self._size = _append(self._fd, (("\n" if self.count == 0 else ",\n") + text).encode("utf-8"), self._size)
        self.count += 1

    def close(self) -> None:
        """End the array and move the file into place (once; later calls do nothing)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            _append(fd, b"\n]\n", self._size)
            os.fsync(fd)
            os.close(fd)
            fd = None
            os.chmod(self._tmp, _umask_mode(0o666))
            os.replace(self._tmp, self.path)
        except BaseException:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
            raise

    def __enter__(self) -> JsonArrayWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
