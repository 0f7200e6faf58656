"""ONNX files written by ovdet: the metadata contract, the bundle layout, and opening them with ONNX Runtime.

Every export carries a JSON document under the ``ovdet`` key of the model's ``metadata_props``: ``format_version``,
``kind`` (``"detector"`` or ``"text_encoder"``) and what a reader needs (see :mod:`ovdet.model.export` and
:mod:`ovdet.text.export` for the fields each kind writes). A *bundle* is a folder holding ``model.onnx`` (a detector)
and, beside it, ``text_encoder.onnx`` with its ``text_encoder.tokenizer.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError

__all__ = [
    "METADATA_KEY",
    "ONNX_FORMAT_VERSION",
    "DETECTOR_FILE",
    "TEXT_ENCODER_FILE",
    "tokenizer_path",
    "execution_providers",
    "open_session",
    "SPINNING_CONFIG_KEY",
]

METADATA_KEY = "ovdet"
ONNX_FORMAT_VERSION = 2  # 1: folded vocabulary only; 2: + runtime vocabulary, text encoders, int8
DETECTOR_FILE = "model.onnx"
TEXT_ENCODER_FILE = "text_encoder.onnx"
# ONNX Runtime's session config key (onnxruntime_session_options_config_keys.h); "0" stops idle workers spinning
SPINNING_CONFIG_KEY = "session.intra_op.allow_spinning"


def tokenizer_path(text_encoder: str | os.PathLike) -> Path:
    """Where the tokenizer of a text-encoder export lives: ``NAME.onnx`` → ``NAME.tokenizer.json`` beside it."""
    path = Path(text_encoder)
    return path.with_name(path.stem + ".tokenizer.json")


def execution_providers(device: str = "cpu") -> list[str]:
    """ONNX Runtime execution providers for a device string: ``"cpu"``, or ``"cuda"`` / ``"cuda:N"``.

    Raises:
        ConfigError: an unknown device, or CUDA asked for where this onnxruntime has no CUDA provider.
    """
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError(
                f"--device {device}: this onnxruntime has no CUDA provider (it has "
                f"{', '.join(ort.get_available_providers())}); pip install onnxruntime-gpu, or use --device cpu"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ConfigError(f"unknown device {device!r} for ONNX Runtime; use cpu or cuda")


def open_session(
    path: str | os.PathLike,
    *,
    kind: str,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """An ``onnxruntime.InferenceSession`` for an ovdet export of ``kind``, and its ovdet metadata.

    Args:
        path: The ``.onnx`` file.
        kind: ``"detector"`` or ``"text_encoder"``: what the caller needs.
        threads: Intra-op threads (``None``: ONNX Runtime's default, all cores); they sleep when idle instead of
            spin-waiting (``session.intra_op.allow_spinning`` is ``"0"``), so they leave the cores to other work.
        providers: Execution providers (default ``["CPUExecutionProvider"]``).

    Raises:
        CheckpointError: a missing or unreadable file, one not exported by ovdet, a newer format, or another kind.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX file {path} does not exist")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    # ONNX Runtime's intra-op workers otherwise spin-wait after each run and keep their cores busy: whatever runs next
    # in the process (a video decoder, another model, ultralytics in a side-by-side benchmark: 75 -> 109 ms) loses
    # them. Not spinning costs a session nothing measurable (ovdet's folded export: 57 vs 58 ms, 2 threads).
    options.add_session_config_entry(SPINNING_CONFIG_KEY, "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as e:  # onnxruntime raises its own unrelated exception types for unreadable files
        raise CheckpointError(f"cannot load {path} with ONNX Runtime: {str(e).splitlines()[0][:300]}") from e
    meta = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if meta is None:
        raise CheckpointError(f"{path} was not exported by ovdet: no '{METADATA_KEY}' metadata")
    info = json.loads(meta)
    if info.get("format_version", 0) > ONNX_FORMAT_VERSION:
        raise CheckpointError(f"{path} has ovdet ONNX format {info['format_version']}, newer than this ovdet reads")
    found = info.get("kind", "detector")
    if found != kind:
        hint = {
            "detector": "load it with ovdet.load_onnx(path)",
            "text_encoder": "pass it as ovdet.load_onnx(detector, text_encoder=path)",
        }.get(found, "")
        raise CheckpointError(f"{path} is an ovdet {found.replace('_', ' ')} export, not a {kind.replace('_', ' ')}; "
                              f"{hint}")  # fmt: skip
    return session, info
