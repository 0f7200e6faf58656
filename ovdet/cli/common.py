"""Helpers shared by subcommands: the model options, checks made before any model loads, class lists, arg types."""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING

from ..errors import VocabularyError

if TYPE_CHECKING:  # the CLI imports neither detector before it must: the ONNX path runs without torch
    from ..runtime.predictor import Predictor

__all__ = [
    "add_model_args",
    "add_class_args",
    "quiet_opencv",
    "prepare_compute",
    "resolve_model",
    "is_onnx_model",
    "load_onnx_model",
    "parse_classes",
    "set_classes",
    "prompt_images",
    "class_inputs",
    "model_inputs",
    "probability",
    "positive_int",
]

logger = logging.getLogger("ovdet")


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_model_args(parser: argparse.ArgumentParser, *, device_default: str | None = "cpu") -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="a saved model folder, a known weights name, an exported model.onnx (ONNX Runtime), or an architecture "
        "config (name or YAML: random weights); default: the bundled default model",
    )
    parser.add_argument(
        "--text-encoder",
        default=None,
        help="text encoder spec: for a config, the encoder to build with (default: the one the config names, else "
        "ViT-B-32-quickgelu:openai); for a saved model, the same tower from elsewhere, e.g. its weights as a file "
        "offline: 'ViT-B-32-quickgelu:/path/open_clip_model.safetensors'; for an ONNX model, its exported "
        "text_encoder.onnx (default: the one beside it)",
    )
    parser.add_argument("--device", default=device_default, help="cpu, cuda, cuda:1, mps (default: cpu)")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for the model (default: the cores available; see README, Threads, for machines shared "
        "with other busy processes)",
    )


def add_class_args(parser: argparse.ArgumentParser, *, default_help: str = "", visual: bool = False) -> None:
    parser.add_argument(
        "--classes",
        help='comma-separated classes, e.g. "person, red backpack"; NAME=PROMPT|PROMPT gives a class several prompts '
        f'("car=car|automobile, dog"){default_help}',
    )
    parser.add_argument(
        "--classes-file", help="a text file with one class per line (same NAME=PROMPT|PROMPT syntax; # comments)"
    )
    if visual:
        parser.add_argument(
            "--visual-prompts", metavar="FILE.json",
            help='classes given by example boxes: JSON {"class": [{"image": PATH, "boxes": [[x0, y0, x1, y1], ...]}, '
            "...]} (paths relative to the file; texts may stand beside examples); combines with --classes",
        )  # fmt: skip


def quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's own warnings (a damaged packet, a truncated JPEG) off the terminal: ovdet reports
    each unreadable input in one line of its own. ``ovdet -v`` shows them."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg opens a file
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def prepare_compute(
    device: str | None, threads: int | None, imgsz: int | None = None, batch: int = 1, *, model: str | None = None
) -> str:
    """Check the device, set the CPU threads and check that ``imgsz`` can fit, before any model loads; returns the
    device as a string. For an ONNX ``model`` nothing touches torch: ONNX Runtime checks the device and takes the
    threads when the model loads (:func:`resolve_model`).

    Raises:
        ConfigError: a device this machine does not have, or an input size that cannot fit in memory.
    """
    if model is not None and is_onnx_model(model):
        from ..runtime.session import execution_providers

        execution_providers(device or "cpu")  # a device ONNX Runtime cannot use fails here, before the load
        return device or "cpu"
    from ..model.device import check_memory, resolve_device, set_threads

    dev = resolve_device(device or "cpu")
    set_threads(threads)
    if imgsz is not None:
        check_memory(imgsz * imgsz, batch=batch, device=dev)  # a lower bound for every model: refuses the absurd
    return str(dev)


def resolve_model(model: str | None, text_encoder: str | None, device: str, threads: int | None = None):
    """The model ``--model`` names (see :func:`ovdet.io.resolve.resolve_model`), on ``device``; an ONNX export (or
    bundle folder) runs in ONNX Runtime, without torch, on ``threads`` (torch's were set by :func:`prepare_compute`)."""
    if model is not None and is_onnx_model(model):
        return load_onnx_model(model, text_encoder, device, threads)
    from ..io.resolve import resolve_model as resolve

    return resolve(model, text_encoder=text_encoder, device=device)


def parse_classes(
    classes: str | None, classes_file: str | None, visual_prompts: str | None = None
) -> dict[str, list]:
    """Classes from ``--classes "a, b=b|bee"``, ``--classes-file`` (see :mod:`ovdet.classes`) and/or
    ``--visual-prompts FILE.json`` (see :func:`ovdet.prompts.read_prompts_file`: every image read and every box
    checked here, before any model loads), as a dict name → prompts for ``set_classes``.

    Raises:
        VocabularyError: no class given, a malformed entry or prompts file, a bad box, or duplicate classes (across
            the options too).
        SourceError: a reference image that is missing or cannot be decoded.
    """
    from ..classes import normalize_classes, parse_class_list, read_class_file

    if classes is None and classes_file is None and visual_prompts is None:
        raise VocabularyError('no classes given; pass --classes "person, bus" or --classes-file FILE')
    merged: dict[str, list] = {}
    if classes is not None:
        merged.update(parse_class_list(classes))
    for path, read in ((classes_file, read_class_file), (visual_prompts, _read_prompts_file)):
        if path is not None:
            found = read(path)
            normalize_classes([*merged, *found])  # a class given twice is a duplicate, named in the error
            merged.update(found)
    return merged


def _read_prompts_file(path: str) -> dict[str, list]:
    from ..prompts import read_prompts_file

    return read_prompts_file(path)


def prompt_images(classes: dict[str, list] | None) -> list[str]:
    """The reference image files of the visual prompts among ``classes``: inputs that no output may replace."""
    from ..prompts import is_visual

    return [p.source for prompts in (classes or {}).values() for p in prompts if is_visual(p) and p.source]


def class_inputs(args: argparse.Namespace, classes: dict[str, list] | None) -> list[str]:
    """Every file the class options read (``--classes-file``, ``--visual-prompts`` and its reference images):
    inputs, like the images, that no output may replace (``--json prompts.json`` would destroy the prompts)."""
    files = [getattr(args, "classes_file", None), getattr(args, "visual_prompts", None)]
    return [f for f in files if f is not None] + prompt_images(classes)


def model_inputs(args: argparse.Namespace) -> list[str]:
    """Every file ``--model`` and ``--text-encoder`` read (an ONNX file and the text encoder found beside it, the files
    of a saved model or bundle folder, a weights file in ``NAME:PATH``): inputs, like the images, that no output may
    replace (``--json model.onnx`` would destroy the model)."""
    from ..runtime.session import TEXT_ENCODER_FILE, tokenizer_path  # torch-free, like the rest of this module

    found: list[str] = []
    for spec in (getattr(args, "model", None), getattr(args, "text_encoder", None)):
        if not spec:
            continue
        for path in {spec, spec.partition(":")[2]} - {""}:
            path = os.path.expanduser(path)
            if os.path.isdir(path):
                found.extend(e.path for e in os.scandir(path) if e.is_file())
            elif os.path.isfile(path):
                found.append(path)
                if path.endswith(".onnx"):  # load_onnx finds these beside it
                    encoder = os.path.join(os.path.dirname(path), TEXT_ENCODER_FILE)
                    found += [encoder, str(tokenizer_path(path)), str(tokenizer_path(encoder))]
    return found


def set_classes(model: Predictor, classes: dict[str, list], imgsz: int | None) -> None:
    """``model.set_classes(classes)`` on either detector (``OVDetector`` or ``OnnxDetector``); a PyTorch model reads
    visual prompts' reference images at ``--imgsz``.

    Raises:
        VocabularyError: bad classes (see ``set_classes``).
        SourceError: a reference image that cannot be read.
    """
    from ..prompts import is_visual

    if imgsz is not None and any(is_visual(p) for ps in classes.values() for p in ps) and hasattr(model, "embed_visual"):
        model.set_classes(classes, imgsz=imgsz)
    else:
        model.set_classes(classes)


def input_files(sources: list) -> set[str]:
    """The real paths of every local file the sources read: files, the images of folders and globs."""
    import glob

    from ..images import IMAGE_SUFFIXES

    found: set[str] = set()
    for source in sources:
        if not isinstance(source, (str, os.PathLike)):
            continue
        text = os.path.expanduser(os.fspath(source))
        if os.path.isdir(text):
            found.update(os.path.realpath(e.path) for e in os.scandir(text) if e.name.lower().endswith(IMAGE_SUFFIXES))
        elif any(ch in text for ch in "*?[") and not os.path.exists(text):  # "photo [1].jpg" is a file's name
            found.update(os.path.realpath(f) for f in glob.glob(text, recursive=True))
        elif os.path.exists(text):
            found.add(os.path.realpath(text))
    return found


def check_outputs(outputs: dict[str, os.PathLike | str | None], sources: list) -> None:
    """Refuse outputs that are inputs (``ovdet stream a.mp4 --out a.mp4``) or the same file twice
    (``--out x.mp4 --json x.mp4``): ovdet never writes over what it reads, nor one output over another.

    Args:
        outputs: Option name (as the user typed it) → output path, ``None`` when not given.
        sources: The inputs as given (paths, folders, globs; other kinds are ignored).

    Raises:
        OutputError: naming the option and the clash.
    """
    from ..errors import OutputError

    inputs = input_files(sources)
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        real = os.path.realpath(os.path.expanduser(os.fspath(path)))
        if real in inputs:
            raise OutputError(f"{option} {path} is one of the inputs; ovdet never writes over what it reads, choose "
                              "another path")  # fmt: skip
        if real in seen:
            raise OutputError(f"{option} and {seen[real]} are the same file ({path}); give each output its own path")
        seen[real] = option


def is_onnx_model(model: str) -> bool:
    """An exported ``.onnx`` file, or a bundle folder holding ``model.onnx`` (and no saved PyTorch model)."""
    from pathlib import Path

    path = Path(model)
    return model.endswith(".onnx") or (path.is_dir() and (path / "model.onnx").is_file()
                                       and not (path / "config.json").is_file())  # fmt: skip


def load_onnx_model(model: str, text_encoder: str | None, device: str, threads: int | None = None):
    """``ovdet.load_onnx``: ONNX Runtime on ``device`` with ``threads``; ``--text-encoder`` names an exported
    text-encoder ONNX."""
    from ..runtime import load_onnx
    from ..runtime.session import execution_providers

    return load_onnx(model, text_encoder=text_encoder, threads=threads, providers=execution_providers(device))
