"""The one place where ovdet unpickles: reading an ultralytics ``.pt`` file, only with ``trust_pickle=True``.

An ultralytics checkpoint is a pickle of Python objects, and reading one can run any code the file carries. Every
converter in :mod:`ovdet.io.convert` gets its module through :func:`read_ultralytics_checkpoint`, so the trust gate,
the error messages and the provenance record live here once.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError, PickleRefusedError

__all__ = ["read_ultralytics_checkpoint", "checkpoint_module", "provenance", "sha256"]


def read_ultralytics_checkpoint(path: str | os.PathLike, *, trust_pickle: bool = False) -> dict[str, Any]:
    """Unpickle an ultralytics checkpoint file (the dict ``torch.save`` wrote: ``model``, ``ema``, ``train_args``...).

    Args:
        path: The ``.pt`` file.
        trust_pickle: Must be ``True``: unpickling runs whatever code the file carries, so only do it for files from
            a source you trust (such as ultralytics' official releases).

    Raises:
        CheckpointError: no such file, or not a readable torch checkpoint.
        PickleRefusedError: ``trust_pickle`` is not ``True``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / "model.safetensors").is_file():
            raise CheckpointError(f"{path} is already an ovdet model folder: load it with ovdet.load('{path}') or "
                                  f"--model {shlex.quote(str(path))}; nothing to convert")  # fmt: skip
        raise CheckpointError(f"checkpoint {path} is a folder; give the ultralytics .pt file itself")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix.lower() in {".safetensors", ".onnx"}:  # ovdet's own formats: no pickle, nothing to convert
        raise CheckpointError(
            f"{path} is a {path.suffix[1:]} file, not an ultralytics .pt checkpoint; an ovdet model folder (holding "
            "model.safetensors) loads with ovdet.load(folder), an exported .onnx with ovdet.load_onnx(path)"
        )
    if trust_pickle is not True:
        raise PickleRefusedError(
            f"{path} is a pickle (ultralytics saves checkpoints as pickled Python objects), and unpickling a file can "
            f"run any code it carries. If you trust where it came from, convert it once with "
            f"ovdet.from_ultralytics('{path}', trust_pickle=True) or `ovdet convert ultralytics {shlex.quote(str(path))} OUT_DIR "
            "--trust-pickle`; the converted folder (safetensors + JSON) then loads without any pickle"
        )
    import ultralytics.nn.tasks  # noqa: F401  (the classes the pickle names; importing them first gives clear errors)

    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=False)
    except ModuleNotFoundError as e:
        raise CheckpointError(
            f"{path} needs the Python module '{e.name}', which is not installed; an ultralytics checkpoint must be "
            "readable by the installed ultralytics (re-save it with `YOLO(path).save(new_path)` if it is older)"
        ) from e
    except Exception as e:  # pickle, zip and EOF errors all mean "not a checkpoint"; the message says which
        detail = str(e).splitlines()[0][:200] if str(e) else ""
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(e).__name__}: {detail})") from e
    if isinstance(checkpoint, nn.Module):
        checkpoint = {"model": checkpoint}
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not an ultralytics checkpoint dict")
    return checkpoint


def checkpoint_module(checkpoint: dict[str, Any], path: str | os.PathLike, supported: str) -> nn.Module:
    """The model a checkpoint dict holds: its EMA weights when present (ultralytics' own choice), else ``model``.

    Raises:
        CheckpointError: there is no model in it; ``supported`` says what ovdet imports.
    """
    module = checkpoint.get("ema") or checkpoint.get("model")
    if not isinstance(module, nn.Module):
        keys = list(map(str, checkpoint))  # a few: a state dict has hundreds, and the error is one line
        shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} keys)" if len(keys) > 8 else "")
        raise CheckpointError(f"{path} has no model in it (keys: {shown}); {supported}")
    return module


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def provenance(checkpoint: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """What ``config.json`` records about the converted file (``metadata["converted_from"]``)."""
    return {
        "format": "ultralytics",
        "file": Path(path).name,
        "sha256": sha256(Path(path)),
        "ultralytics_version": checkpoint.get("version"),
        "date": checkpoint.get("date"),
        "license": checkpoint.get("license"),
    }
