"""What ``ovdet label`` reads: image files, folders (recursively), globs and videos, each image named once.

- **Found, or one clear error.** Folders are searched recursively (into linked folders too) for every image type
  ``ovdet predict`` reads (:data:`ovdet.images.IMAGE_SUFFIXES`) and every video type
  (:data:`ovdet.images.VIDEO_SUFFIXES`), suffixes in any case (``IMG_01.JPG``). A source in which nothing is found
  is a :class:`~ovdet.errors.SourceError` naming what was searched and for which suffixes — never a run that
  silently labels zero images, or fewer than asked (autodistill #20, #181). A path that exists is that file or
  folder, even if it looks like a glob (``photos [1]/``).
- **Outputs are not inputs.** Files inside the output folder are left out, so a dataset written inside a source
  folder is not read back as new images on the next run.
- **Names never clash.** An image's output name is its path below the folder given, with ``/`` written ``__``
  (``site_a/cam1/0001.jpg`` → ``site_a__cam1__0001.jpg``); a name taken already (equal stems, ignoring case, since a
  YOLO label file is named by the stem) gets ``_1``, ``_2``... A video frame is ``<video>_<frame:06d>.png``, and
  no image is given a name a frame could have (``clip_000012.jpg`` beside ``clip.mp4``: a label file each).
- **Kept pixels.** Frames, and images in formats other tools do not read (``.jp2``, ``.pbm``, ``.pgm``, ``.ppm``;
  ultralytics reads jpg/jpeg/png/bmp/tif/tiff/webp), are written into the dataset as PNG — the exact pixels that were
  labelled — instead of being linked.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SourceError
from ..images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image

__all__ = ["LabelItem", "LabelSources", "find_sources", "iter_images"]

LINKABLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")  # what ultralytics' loaders read
_MAGIC = "*?["


@dataclass(frozen=True)
class LabelItem:
    """One image to label.

    Attributes:
        key: Its identity in the journal: the file's real path, plus ``#frame=N`` for a video frame.
        name: Its file name in the dataset.
        path: The source file (the video, for a frame).
        frame: The frame index in the video, or ``None`` for an image file.
        store: Whether the dataset keeps its pixels as a PNG of its own (frames, formats others cannot read) rather
            than a link to (or copy of) the source file.
    """

    key: str
    name: str
    path: str
    frame: int | None = None
    store: bool = False


@dataclass
class LabelSources:
    """The images and videos found; videos become frame items as they are read (:func:`iter_images`)."""

    images: list[LabelItem]
    videos: list[tuple[str, str]]  # (real path, output name prefix)
    searched: list[str]


def _frame_head(stem: str) -> str | None:
    """``clip`` for a stem a frame of video ``clip`` could have (``clip_000012``: 6 digits or more), else ``None``."""
    head, sep, tail = stem.rpartition("_")
    return head if sep and len(tail) >= 6 and tail.isdigit() else None


class _Names:
    """Unique output names: equal stems (ignoring case) get ``_1``, ``_2``... A video claims a prefix, its frames
    being ``<prefix>_<frame>``: an image never takes a stem one of them could have (``clip_000012.jpg`` beside
    ``clip.mp4``), nor a video a prefix whose frame names an image has."""

    def __init__(self, taken: Iterable[str] = (), prefixes: Iterable[str] = ()):
        self.stems: set[str] = set()
        self.heads: set[str] = set()  # X of every stem X_<digits>: prefixes a video cannot take
        self.prefixes = {p.casefold() for p in prefixes}
        for name in taken:
            self._add(Path(name).stem.casefold())

    def _add(self, stem: str) -> None:
        self.stems.add(stem)
        head = _frame_head(stem)
        if head is not None:
            self.heads.add(head)

    def claim(self, stem: str, suffix: str) -> str:
        """A unique name for an image: ``stem`` (or ``stem_1``...) + ``suffix``."""
        candidate, i = stem, 1
        while candidate.casefold() in self.stems or _frame_head(candidate.casefold()) in self.prefixes:
            candidate, i = f"{stem}_{i}", i + 1
        self._add(candidate.casefold())
        return candidate + suffix

    def claim_prefix(self, stem: str) -> str:
        """A unique prefix for a video's frame names."""
        candidate, i = stem, 1
        while (key := candidate.casefold()) in self.stems or key in self.heads or key in self.prefixes:
            candidate, i = f"{stem}_{i}", i + 1
        self.prefixes.add(candidate.casefold())
        return candidate


def _inside(path: str, folder: str | None) -> bool:
    return folder is not None and (path == folder or path.startswith(folder.rstrip(os.sep) + os.sep))


def _glob_root(pattern: str) -> str:
    parts = Path(pattern).parts
    literal = [p for p in parts[: next((i for i, p in enumerate(parts) if any(c in p for c in _MAGIC)), len(parts))]]
    return str(Path(*literal)) if literal else "."


def _walk(folder: Path) -> list[tuple[str, str]]:
    """Every file below ``folder`` as ``(path, path relative to folder)``, following links to folders (each real
    folder once, so a link to a parent ends) and keeping broken links (reading them fails, so they are reported)."""
    files, visited = [], set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:
            dirs[:] = []
            continue
        visited.add(real)
        dirs.sort()
        for name in names:
            file = os.path.join(root, name)
            files.append((file, os.path.relpath(file, folder)))
    return files


def _expand(source: str) -> tuple[list[tuple[str, str]], str]:
    """``(files as (path, name relative to the source), description of what was searched)``."""
    if source.startswith(("http://", "https://", "rtsp://", "rtmp://")):
        raise SourceError(f"'{source}' is a URL; ovdet label reads local files. Download the images first, or use "
                          "`ovdet stream` for live streams")  # fmt: skip
    path = Path(source).expanduser()
    if path.is_dir():
        return _walk(path), f"folder {path} (recursively)"
    if any(c in source for c in _MAGIC) and not path.exists():  # an existing "photo [1].jpg" is that file
        root = _glob_root(os.path.expanduser(source))
        found = glob.glob(os.path.expanduser(source), recursive=True)
        return [(f, os.path.relpath(f, root)) for f in found if os.path.isfile(f)], f"pattern '{source}'"
    if not path.exists():
        raise SourceError(f"not found: {path}; give image files, folders, glob patterns or videos")
    if not path.is_file():
        raise SourceError(f"{path} is not a regular file (a FIFO, a device?); give images, folders or videos")
    return [(str(path), path.name)], f"file {path}"


def find_sources(
    sources: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    exclude: str | os.PathLike | None = None,
    known: dict[str, str] | None = None,
) -> LabelSources:
    """Find the images and videos to label and name each (see the module docstring).

    Args:
        sources: Files, folders, glob patterns (one or a list).
        exclude: A folder whose files are never inputs (the output folder).
        known: Journal keys → names from an earlier run: those keep their names, new items avoid them.

    Raises:
        SourceError: a missing source or URL; a source in which no image or video is found (naming what was
            searched).
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = [os.fspath(s) for s in sources]
    if not sources:
        raise SourceError("no source given; pass image files, folders, glob patterns or videos")
    known = known or {}
    skip = os.path.realpath(exclude) if exclude is not None else None
    prefixes = {key.partition("#frame=")[0]: name.rpartition("_")[0] for key, name in known.items() if "#frame=" in key}
    names = _Names(known.values(), prefixes.values())
    images: list[LabelItem] = []
    videos: list[tuple[str, str]] = []
    searched: list[str] = []
    seen: set[str] = set()
    for source in sources:
        files, what = _expand(source)
        searched.append(what)
        matched = 0
        for file, relative in sorted(files, key=lambda f: f[1]):
            suffix = Path(file).suffix.lower()
            # a broken link is itself the item (its target is nowhere): the error then names the file in the folder
            real = os.path.realpath(file) if os.path.exists(file) else os.path.abspath(file)
            inside = _inside(real, skip) or _inside(os.path.abspath(file), skip)  # a link in the output, too
            if suffix not in IMAGE_SUFFIXES + VIDEO_SUFFIXES or inside:
                continue
            matched += 1
            if real in seen:
                continue
            seen.add(real)
            stem = "__".join(Path(relative).with_suffix("").parts) or Path(file).stem
            if suffix in VIDEO_SUFFIXES:
                videos.append((real, prefixes.get(real) or names.claim_prefix(stem)))
                continue
            store = suffix not in LINKABLE_SUFFIXES
            name = known.get(real) or names.claim(stem, ".png" if store else Path(file).suffix)
            images.append(LabelItem(real, name, real, None, store))
        if not matched:  # a wrong suffix or a typo in one source among several is not labelling silently less
            raise SourceError(
                f"no images or videos found: searched {what} for {', '.join(IMAGE_SUFFIXES)} and videos "
                f"{', '.join(VIDEO_SUFFIXES)} (in any case)"
                + (f", leaving out the output folder {skip}" if skip else "")
                + ("; fix or leave out that source" if len(sources) > 1 else "")
            )
    return LabelSources(images, videos, searched)


def frame_item(video: str, prefix: str, index: int) -> LabelItem:
    """The item of frame ``index`` of ``video`` (its name follows from the video's prefix)."""
    return LabelItem(f"{video}#frame={index}", f"{prefix}_{index:06d}.png", video, index, True)


def iter_images(
    found: LabelSources, *, done: set[str] | frozenset[str] = frozenset(), vid_stride: int = 1
) -> Iterator[tuple[LabelItem, np.ndarray | None, SourceError | None]]:
    """Decode every item not in ``done``: ``(item, BGR image, None)``, or ``(item, None, error)`` for one that
    cannot be read (a video that cannot be opened is one item with ``frame`` ``None``). Video frames are read every
    ``vid_stride``-th, in order, on a reader thread (:class:`~ovdet.sources.VideoFileSource`)."""
    from ..sources import VideoFileSource

    for item in found.images:
        if item.key in done:
            continue
        try:
            image, _ = read_image(item.path)
        except SourceError as e:
            yield item, None, e
            continue
        yield item, image, None
    for video, prefix in found.videos:
        try:
            source = VideoFileSource(video, vid_stride=vid_stride)
        except SourceError as e:
            yield LabelItem(video, prefix, video), None, e
            continue
        with source:
            for frame in source:
                item = frame_item(video, prefix, frame.index)
                if item.key not in done:
                    yield item, frame.image, None
