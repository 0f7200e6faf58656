"""Helpers shared by subcommands: the model options, checks made before any model loads, class lists, arg types."""

from __future__ import annotations

import argparse
import logging
import os

from ..errors import VocabularyError

__all__ = [
    "add_model_args",
    "add_class_args",
    "prepare_compute",
    "resolve_model",
    "parse_classes",
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
        help="a saved model folder, a known weights name, or an architecture config (name or YAML: random weights); "
        "default: the bundled default model",
    )
    parser.add_argument(
        "--text-encoder",
        default=None,
        help="text encoder spec for a model built from a config (default ViT-B-32-quickgelu:openai)",
    )
    parser.add_argument("--device", default=device_default, help="cpu, cuda, cuda:1, mps (default: cpu)")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for the model (default: the cores available; see README, Threads, for machines shared "
        "with other busy processes)",
    )


def add_class_args(parser: argparse.ArgumentParser, *, default_help: str = "") -> None:
    parser.add_argument(
        "--classes",
        help='comma-separated classes, e.g. "person, red backpack"; NAME=PROMPT|PROMPT gives a class several prompts '
        f'("car=car|automobile, dog"){default_help}',
    )
    parser.add_argument(
        "--classes-file", help="a text file with one class per line (same NAME=PROMPT|PROMPT syntax; # comments)"
    )


def prepare_compute(device: str | None, threads: int | None, imgsz: int | None = None, batch: int = 1) -> str:
    """Check the device, set the CPU threads and check that ``imgsz`` can fit, before any model loads; returns the
    device as a string.

    Raises:
        ConfigError: a device this machine does not have, or an input size that cannot fit in memory.
    """
    from ..model.device import check_memory, resolve_device, set_threads

    dev = resolve_device(device or "cpu")
    set_threads(threads)
    if imgsz is not None:
        check_memory(imgsz * imgsz, batch=batch, device=dev)  # a lower bound for every model: refuses the absurd
    return str(dev)


def resolve_model(model: str | None, text_encoder: str | None, device: str):
    """The model ``--model`` names (see :func:`ovdet.io.resolve.resolve_model`), on ``device``."""
    from ..io.resolve import resolve_model as resolve

    return resolve(model, text_encoder=text_encoder, device=device)


def parse_classes(classes: str | None, classes_file: str | None) -> dict[str, list[str]]:
    """Classes from ``--classes "a, b=b|bee"`` and/or ``--classes-file`` (see :mod:`ovdet.classes`), as a dict
    name → prompts for ``set_classes``.

    Raises:
        VocabularyError: no class given, a malformed entry, or duplicate classes (across both options too).
    """
    from ..classes import normalize_classes, parse_class_list, read_class_file

    if classes is None and classes_file is None:
        raise VocabularyError('no classes given; pass --classes "person, bus" or --classes-file FILE')
    merged: dict[str, list[str]] = {}
    if classes is not None:
        merged.update(parse_class_list(classes))
    if classes_file is not None:
        from_file = read_class_file(classes_file)
        normalize_classes([*merged, *from_file])  # a class in both is a duplicate, named in the error
        merged.update(from_file)
    return merged


def check_input_output_clash(inputs: list[str], outputs: list[os.PathLike | str]) -> None:
    """Refuse an output path that is one of the inputs (``ovdet predict a.jpg --json a.jpg``).

    Raises:
        OutputError: an output would replace an input.
    """
    from ..errors import OutputError

    given = {os.path.realpath(p) for p in inputs if isinstance(p, str)}
    for out in outputs:
        if out is not None and os.path.realpath(out) in given:
            raise OutputError(f"output {out} is one of the inputs; ovdet never writes over its input, choose another path")
