"""Visual prompts: a class given by example boxes in an image instead of (or beside) a name. Torch-free.

A :class:`VisualPrompt` is one image and the boxes of one or more examples of a class in it. It is accepted wherever a
text prompt is (``model.set_classes({"widget": [VisualPrompt("a.jpg", [[10, 20, 90, 80]]), "widget"]})``); the model
turns it into an embedding in the space its scorer compares regions with (:mod:`ovdet.model.visual`). Here live the
record itself, its checks, its JSON form (provenance in a saved model's ``config.json`` and an ONNX export's metadata)
and the prompts file of the command line (``--visual-prompts prompts.json``)::

    {"widget": [{"image": "refs/a.jpg", "boxes": [[10, 20, 90, 80]]},
                {"image": "refs/b.jpg", "boxes": [[5, 5, 60, 70], [100, 40, 150, 90]]}],
     "logo": ["logo", {"image": "refs/c.png", "boxes": [[0, 0, 32, 32]]}]}

Every image is decoded as every input route decodes it (:mod:`ovdet.images`), and every box is checked where it enters:
numbers, ``x1 > x0`` and ``y1 > y0``, inside the image. Each problem is one :class:`~ovdet.errors.VocabularyError`
(a :class:`~ovdet.errors.SourceError` for an image that cannot be found or read) naming the box and the fix.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SourceError, VocabularyError
from .images import VIDEO_SUFFIXES, read_image, resolve_images

__all__ = ["VisualPrompt", "check_boxes", "is_visual", "prompt_to_json", "prompt_from_json", "read_prompts_file", "reusable_rows"]

_RECORD_KEYS = {"image", "image_size", "sha1", "boxes"}


def _pixels_sha1(image: np.ndarray) -> str:
    digest = hashlib.sha1(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def _numbers(value: Any, where: str) -> np.ndarray:
    """``value`` as a float64 array, refusing strings, booleans and anything else that is not a real number (numpy
    would read ``"10"`` as 10.0 without a word)."""
    if isinstance(value, np.ndarray) or type(value).__module__.startswith("torch"):
        array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
        if array.dtype.kind not in "iuf":
            raise VocabularyError(f"{where}: box coordinates must be numbers, got an array of {array.dtype}")
        return array.astype(np.float64)

    def check(item: Any) -> None:
        if isinstance(item, (list, tuple)):
            for x in item:
                check(x)
        elif isinstance(item, bool) or not isinstance(item, numbers.Real):
            raise VocabularyError(
                f"{where}: box coordinates must be numbers, got {item!r}; boxes are [[x0, y0, x1, y1], ...] in pixels"
            )

    check(value)
    try:
        return np.asarray(value, dtype=np.float64)
    except ValueError:  # ragged nesting
        raise VocabularyError(f"{where}: boxes must be [[x0, y0, x1, y1], ...] (four numbers each), got {value!r}") from None


def check_boxes(boxes: Any, image_size: tuple[int, int], *, where: str = "visual prompt") -> np.ndarray:
    """``(M, 4)`` float32 xyxy pixel boxes, checked against an image of ``image_size`` ``(h, w)``.

    A single box may be given flat, ``[x0, y0, x1, y1]``.

    Raises:
        VocabularyError: non-numeric or non-finite coordinates, a shape other than ``(M, 4)``, no box, an empty or
            flat box (``x1 <= x0`` or ``y1 <= y0``), or a box reaching outside the image.
    """
    array = _numbers(boxes, where)
    if array.size == 0:
        raise VocabularyError(f"{where}: no boxes; give at least one [x0, y0, x1, y1] box of an example")
    if array.ndim == 1 and array.shape[0] == 4:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 4:
        raise VocabularyError(f"{where}: boxes must have shape (M, 4) as [[x0, y0, x1, y1], ...], got {array.shape}")
    h, w = image_size
    for i, box in enumerate(array):
        text = "[" + ", ".join(f"{x:g}" for x in box) + "]"
        label = f"{where}: box {text}" if len(array) == 1 else f"{where}: box {i + 1} {text}"
        if not np.isfinite(box).all():
            raise VocabularyError(f"{label} has a coordinate that is not finite")
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            raise VocabularyError(f"{label} is empty or flat: boxes are [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise VocabularyError(
                f"{label} reaches outside the image ({w}x{h} px): boxes are pixel corners [x0, y0, x1, y1] within "
                f"0 <= x <= {w} and 0 <= y <= {h}"
            )
    return array.astype(np.float32)


def _check_image_path(text: str) -> None:
    """Refuse a URL or a video with a visual prompt's fix (:func:`~ovdet.images.resolve_images` would point to
    ``ovdet stream``, which is right for predict, not here)."""
    if text.startswith(("http://", "https://", "rtsp://", "rtmp://")):
        raise SourceError(f"visual prompt on {text}: it is a URL; a visual prompt reads one local image file: "
                          "download the image first")  # fmt: skip
    path = Path(text).expanduser()
    if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
        raise SourceError(
            f"visual prompt on {os.path.abspath(path)}: it is a video; a visual prompt takes one image: save the frame "
            "that shows the example as an image file, or pass that frame as a BGR array (cv2.VideoCapture(...).read())"
        )


class VisualPrompt:
    """Example boxes of one class in one image: a prompt given by example instead of by name.

    Args:
        image: An image file path, a BGR ``uint8`` array (as ``cv2.imread`` gives), a PIL image, or a torch tensor
            ``(3, H, W)`` RGB in [0, 1]; decoded exactly as :meth:`~ovdet.OVDetector.predict` decodes it.
        boxes: ``(M, 4)`` boxes ``[x0, y0, x1, y1]`` in pixels of the image (a single box may be flat), each around
            one example of the class.

    Attributes:
        boxes: ``(M, 4)`` float32 xyxy pixels.
        source: The image file's absolute path, or ``None`` for an image given in memory.
        image_size: ``(h, w)`` of the decoded image.
        sha1: SHA-1 of the decoded pixels: identifies the exact image the examples were taken from.
        imgsz: ``(h, w)``, the input size a model read the image at, on the records a model keeps (``None`` on a
            prompt you make): a class asked for at another size is read again.

    Two prompts are equal when they hold the same boxes on the same pixels. A prompt kept with a model (its
    ``prompts``, a saved ``config.json``) holds no pixels: :attr:`image` reads its file again, and refuses one that
    changed since.

    Raises:
        SourceError: the image cannot be found or decoded, or is not one image (a folder, a video, a batch).
        VocabularyError: a bad box (see :func:`check_boxes`).
    """

    def __init__(self, image: Any, boxes: Any):
        if isinstance(image, (str, os.PathLike)):
            _check_image_path(os.fspath(image))
        items = resolve_images(image)
        if len(items) != 1:
            raise SourceError(f"a visual prompt takes one image, got {len(items)} (a folder, glob or batch); give one "
                              "VisualPrompt per image")  # fmt: skip
        pixels, path = read_image(items[0])
        self._pixels: np.ndarray | None = pixels
        self.source = os.path.abspath(path) if path is not None else None
        self.imgsz: tuple[int, int] | None = None
        self.image_size = (int(pixels.shape[0]), int(pixels.shape[1]))
        self.sha1 = _pixels_sha1(pixels)
        where = f"visual prompt on {self.source}" if self.source else "visual prompt"
        self.boxes = check_boxes(boxes, self.image_size, where=where)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> VisualPrompt:
        """A prompt from its JSON record (:meth:`to_record`), without reading the image.

        Raises:
            VocabularyError: a record without the fields :meth:`to_record` writes.
        """
        if not isinstance(record, Mapping) or not _RECORD_KEYS <= set(record):
            raise VocabularyError(f"not a visual-prompt record (needs {', '.join(sorted(_RECORD_KEYS))}): {record!r}")
        prompt = cls.__new__(cls)
        prompt._pixels = None
        prompt.source = record["image"]
        prompt.image_size = (int(record["image_size"][0]), int(record["image_size"][1]))
        prompt.sha1 = str(record["sha1"])
        prompt.boxes = check_boxes(record["boxes"], prompt.image_size)
        imgsz = record.get("imgsz")
        prompt.imgsz = (int(imgsz[0]), int(imgsz[1])) if imgsz else None
        return prompt

    def to_record(self) -> dict[str, Any]:
        """JSON-ready provenance: ``{"image": absolute path or None, "image_size": [h, w], "sha1": ..., "boxes":
        [[x0, y0, x1, y1], ...]}``, and ``"imgsz": [h, w]`` on a record a model keeps."""
        record = {"image": self.source, "image_size": list(self.image_size), "sha1": self.sha1,
                  "boxes": [[float(x) for x in box] for box in self.boxes]}  # fmt: skip
        if self.imgsz is not None:
            record["imgsz"] = list(self.imgsz)
        return record

    def without_pixels(self, *, imgsz: tuple[int, int] | None = None) -> VisualPrompt:
        """The same prompt holding no pixels (what a model keeps as provenance), read at ``imgsz`` if given."""
        kept = VisualPrompt.from_record(self.to_record())
        if imgsz is not None:
            kept.imgsz = (int(imgsz[0]), int(imgsz[1]))
        return kept

    @property
    def image(self) -> np.ndarray:
        """The decoded BGR ``uint8`` image; a prompt without pixels reads its file again.

        Raises:
            SourceError: the prompt was made from an image in memory and kept without it, or its file is gone or
                changed since.
        """
        if self._pixels is not None:
            return self._pixels
        if self.source is None:
            raise SourceError(
                "this visual prompt was made from an image in memory, which the model did not keep; give "
                "VisualPrompt(image, boxes) again"
            )
        pixels, _ = read_image(self.source)
        if _pixels_sha1(pixels) != self.sha1:
            raise SourceError(f"the reference image {self.source} changed since this visual prompt was made from it; "
                              "give VisualPrompt(image, boxes) again")  # fmt: skip
        return pixels

    def _key(self) -> tuple[str, bytes]:
        return self.sha1, self.boxes.tobytes()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VisualPrompt) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        where = repr(self.source) if self.source else f"<{self.image_size[1]}x{self.image_size[0]} image>"
        n = len(self.boxes)
        return f"VisualPrompt({where}, {n} box{'es' if n != 1 else ''})"


def is_visual(prompt: Any) -> bool:
    """Whether ``prompt`` is a :class:`VisualPrompt`."""
    return isinstance(prompt, VisualPrompt)


def prompt_to_json(prompt: str | VisualPrompt) -> str | dict[str, Any]:
    """A text prompt as itself, a visual prompt as its record (:meth:`VisualPrompt.to_record`)."""
    return prompt.to_record() if isinstance(prompt, VisualPrompt) else prompt


def prompt_from_json(value: str | Mapping[str, Any]) -> str | VisualPrompt:
    """The inverse of :func:`prompt_to_json`."""
    return VisualPrompt.from_record(value) if isinstance(value, Mapping) else value


def reusable_rows(
    current_prompts: Sequence[Sequence[Any]], prompts: Sequence[Sequence[Any]], *, imgsz: tuple[int, int] | None = None
) -> dict[int, int]:
    """Classes with visual prompts equal to those of a class of the current vocabulary: new index → current index.
    Their embeddings are kept as they are (a class's row depends on its prompts, not its name), so
    ``set_classes({**model.prompts, "bus": ["bus"]})`` or a class renamed neither reads reference images again nor
    needs them (a saved model's prompts hold no pixels; an ONNX export cannot read them). With ``imgsz`` ``(h, w)``,
    only classes read at that size are kept (a size asked for is honoured)."""
    current = {tuple(p): i for i, p in enumerate(current_prompts)}

    def read_at(j: int) -> bool:
        return imgsz is None or all(p.imgsz in (None, tuple(imgsz)) for p in current_prompts[j] if is_visual(p))

    return {
        k: current[tuple(p)]
        for k, p in enumerate(prompts)
        if any(map(is_visual, p)) and tuple(p) in current and read_at(current[tuple(p)])
    }


def read_prompts_file(path: str | os.PathLike) -> dict[str, list[str | VisualPrompt]]:
    """Read a visual-prompts file (the command line's ``--visual-prompts``): JSON mapping each class name to a list
    of prompts, each ``{"image": PATH, "boxes": [[x0, y0, x1, y1], ...]}`` or a text prompt (a string); a single
    prompt may stand without the list. Image paths are relative to the file's folder (and kept absolute). UTF-8,
    with or without a byte-order mark.

    Returns:
        ``{name: [VisualPrompt or str, ...]}`` for ``set_classes``; every image read and every box checked.

    Raises:
        VocabularyError: a missing or unreadable file, invalid JSON, a layout other than the one above, a class
            given twice, no class, a bad box (non-numeric, empty or flat, outside its image).
        SourceError: an image that does not exist or cannot be decoded.
    """
    path = Path(path)
    example = '{"widget": [{"image": "ref.jpg", "boxes": [[10, 20, 90, 80]]}]}'
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a BOM (Windows Notepad) is not part of the JSON
    except FileNotFoundError:
        raise VocabularyError(f"visual prompts file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise VocabularyError(f"cannot read visual prompts file {path}: {e}; it must be UTF-8 JSON") from e

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                raise VocabularyError(f"{path}: {key!r} appears twice in one object; give each class once, with all "
                                      "its prompts in one list")  # fmt: skip
            found[key] = value
        return found

    try:
        data = json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as e:
        raise VocabularyError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno} (JSON allows no "
                              "trailing commas, comments or single quotes)") from None  # fmt: skip
    if not isinstance(data, dict):
        raise VocabularyError(f"{path} must hold a JSON object mapping class names to prompts, e.g. {example}")
    if not data:
        raise VocabularyError(f"{path} names no class; e.g. {example}")
    folder = path.parent
    out: dict[str, list[str | VisualPrompt]] = {}
    for name, entries in data.items():
        entries = entries if isinstance(entries, list) else [entries]
        if not entries:
            raise VocabularyError(f"{path}: class {name!r} has no prompts; e.g. {example}")
        prompts: list[str | VisualPrompt] = []
        for i, entry in enumerate(entries, 1):
            where = f"{path}: class {name!r}, prompt {i}"
            if isinstance(entry, str):
                prompts.append(entry)
                continue
            if not isinstance(entry, dict) or set(entry) != {"image", "boxes"}:
                keys = f" (it has {', '.join(map(repr, entry))})" if isinstance(entry, dict) else ""
                raise VocabularyError(
                    f"{where} must be a text or an object with exactly \"image\" and \"boxes\"{keys}, e.g. "
                    '{"image": "ref.jpg", "boxes": [[10, 20, 90, 80]]}'
                )
            image = entry["image"]
            if not isinstance(image, str) or not image.strip():
                raise VocabularyError(f"{where}: \"image\" must be a path (relative to {path.name}'s folder)")
            file = folder / os.path.expanduser(image)
            if file.is_dir():
                raise SourceError(f"{where}: image {image} is a folder; give one image file per prompt (one "
                                  '{"image": ..., "boxes": ...} object per image)')  # fmt: skip
            if not file.is_file():
                raise SourceError(f"{where}: image {image} not found (looked for {file.absolute()}; paths are "
                                  f"relative to the folder of {path.name})")  # fmt: skip
            absolute = os.path.abspath(file)  # normalised ("sub/../a.png"), as VisualPrompt keeps and names it
            try:
                prompts.append(VisualPrompt(absolute, entry["boxes"]))
            except (VocabularyError, SourceError) as e:
                message = str(e).removeprefix(f"visual prompt on {absolute}: ")
                raise type(e)(f"{where} ({image}): {message}") from None
        out[name] = prompts
    return out
