"""An append-only JSON-lines journal that survives SIGKILL: every record written is read back, none twice.

Each record is one line, flushed to the OS as it is written (a killed process loses nothing the OS has) and fsynced
every :data:`FSYNC_S` seconds and on close (a power cut loses at most those seconds). A kill in the middle of a
write can leave a torn last line (no newline): :func:`read_journal` drops it and :class:`Journal` cuts it off before
appending, so the file is always whole lines of complete records.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["FSYNC_S", "Journal", "read_journal"]

logger = logging.getLogger(__name__)

FSYNC_S = 2.0


def read_journal(path: str | os.PathLike, *, skip_damaged: bool = False) -> list[dict[str, Any]]:
    """The complete records of a journal (none if it does not exist); a torn or unreadable last line is ignored.

    Args:
        skip_damaged: Leave out damaged lines (logged) instead of raising: to clear away a run, not to resume it.

    Raises:
        ValueError: a damaged line other than the last (the file was edited or corrupted).
    """
    path = Path(path)
    if not path.exists():
        return []
    *lines, tail = path.read_bytes().split(b"\n")
    if tail:  # no newline after it: the write was cut off (Journal cuts it too, so it is relabelled)
        logger.info("%s: ignoring a torn last line (a killed run)", path)
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            if skip_damaged:
                logger.warning("%s, line %d: not a JSON record; left out", path, i + 1)
                continue
            raise ValueError(f"{path}, line {i + 1}: not a JSON record; the journal was edited or damaged") from None
    return records


class Journal:
    """Append records to ``path`` (created if missing; a torn last line is cut first). Use as a context manager or
    call :meth:`close` in a ``finally``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)  # the torn record is relabelled, not half-kept
        self._file: IO[str] | None = open(self.path, "a", encoding="utf-8")
        self._synced = time.monotonic()

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` (JSON-serialisable) as one line, flushed to the OS at once and fsynced every
        :data:`FSYNC_S` seconds."""
        assert self._file is not None, "write after close"
        self._file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()
        if time.monotonic() - self._synced >= FSYNC_S:
            self.sync()

    def sync(self) -> None:
        """Flush and fsync what was written, so that a power cut loses none of it (nothing once closed)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        """Sync and close the file (once; later calls do nothing)."""
        if self._file is None:
            return
        try:
            self.sync()
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
