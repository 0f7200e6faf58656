"""Resume state beside a saved model: ``train_state.safetensors`` (tensors) + ``train_state.json`` (the rest).

Written into the same temporary folder as the model and swapped in with it, so ``last/`` is always a consistent
pair of model and resume state. No pickle: optimizer state is split into tensors and JSON.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..fileio import save_safetensors

__all__ = ["write_train_state", "read_train_state", "read_train_info", "rng_state", "set_rng_state"]

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    meta = {"python": _jsonable(random.getstate()),
            "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]}  # fmt: skip
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    random.setstate(_tuples(meta["python"]))
    kind, keys, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))


def _jsonable(obj: Any) -> Any:
    return [_jsonable(x) for x in obj] if isinstance(obj, (list, tuple)) else obj


def _tuples(obj: Any) -> Any:
    return tuple(_tuples(x) for x in obj) if isinstance(obj, list) else obj


def write_train_state(
    folder: Path,
    *,
    model_state: dict[str, torch.Tensor],
    ema_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
    tune_state: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the resume state into ``folder`` (the temporary folder of an atomic model save); ``tune_state``: what
    trains beside the model (prompt tuning's embeddings)."""
    tensors: dict[str, torch.Tensor] = {}
    tensors.update({f"model.{k}": v for k, v in model_state.items()})
    tensors.update({f"tune.{k}": v for k, v in (tune_state or {}).items()})
    tensors.update({f"ema.{k}": v for k, v in ema_state.items()})
    opt = optimizer.state_dict()
    opt_meta: dict[str, Any] = {"param_groups": opt["param_groups"], "state": {}}
    for pid, entries in opt["state"].items():
        opt_meta["state"][str(pid)] = {}
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{pid}.{name}"] = value
            else:
                opt_meta["state"][str(pid)][name] = value
    rng_tensors, rng_meta = rng_state()
    tensors.update(rng_tensors)
    save_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, folder / STATE_TENSORS)
    meta = {**info, "optimizer": opt_meta, "rng": rng_meta}
    (folder / STATE_JSON).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def read_train_state(folder: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Read what :func:`write_train_state` wrote: ``({"model", "ema", "optimizer", "rng", "tune"} tensors, json
    info)``.

    Raises:
        CheckpointError: the folder holds no resume state.
    """
    from safetensors.torch import load_file

    meta = read_train_info(folder)
    flat = load_file(str(folder / STATE_TENSORS))
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "ema": {}, "optimizer": {}, "rng": {}, "tune": {}}
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        groups[head][rest if head != "rng" else key] = value
    return groups, meta


def read_train_info(folder: Path) -> dict[str, Any]:
    """The JSON half of the resume state (epoch, settings, history, ...), without loading any tensor.

    Raises:
        CheckpointError: the folder holds no resume state.
    """
    if not (folder / STATE_TENSORS).is_file() or not (folder / STATE_JSON).is_file():
        raise CheckpointError(f"{folder} holds no resume state ({STATE_TENSORS}, {STATE_JSON}); cannot --resume from it")
    return json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))


def optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Reassemble an optimizer ``state_dict`` from its split tensors and JSON."""
    state: dict[int, dict[str, Any]] = {}
    for pid, entries in meta["state"].items():
        state[int(pid)] = dict(entries)
    for key, value in tensors.items():
        pid, _, name = key.partition(".")
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}
