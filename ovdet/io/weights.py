"""Known weights: one table of names a user can pass to ``ovdet.load(name)``.

A bundled entry is a ``save()`` folder shipped in the repository's ``weights/`` (or inside an installed wheel).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..text.spec import YOLO_WORLD_TEXT_ENCODER

__all__ = ["WeightsSpec", "KNOWN_WEIGHTS", "DEFAULT_WEIGHTS", "bundled_weights_dirs", "find_bundled"]


@dataclass(frozen=True)
class WeightsSpec:
    """Where a named model comes from and what it is.

    Attributes:
        name: The name users pass to ``ovdet.load``.
        folder: Folder name under a bundled-weights directory, for models shipped with ovdet.
        url: Download address, for models fetched on demand.
        sha256: Expected digest of the downloaded file.
        description: One line for ``ovdet.list_weights()`` and the docs.
        license: Licence of the weights.
        meta: Metrics, recipe, and other facts.
    """

    name: str
    description: str
    folder: str | None = None
    url: str | None = None
    sha256: str | None = None
    license: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


# ultralytics' official YOLO-World and YOLOE releases (the addresses and file names its own downloader uses). They are
# pickles: ovdet downloads, converts (trusting them because these addresses are fixed here, not passed in) and caches
# them once.
_ULTRALYTICS_RELEASE = "https://github.com/ultralytics/assets/releases/download/v8.4.0"
_MOBILECLIP_B, _MOBILECLIP2_B = "MobileCLIP-B:datacompdr_lt", "MobileCLIP2-B:dfndr2b"


def _ultralytics(name: str, architecture: str, description: str, text_encoder: str | None) -> WeightsSpec:
    return WeightsSpec(
        name=name,
        description=description,
        url=f"{_ULTRALYTICS_RELEASE}/{name}.pt",
        license="AGPL-3.0 (Ultralytics)",
        meta={"architecture": architecture, "source": "ultralytics", "text_encoder": text_encoder},
    )


_YOLO_WORLD: dict[str, WeightsSpec] = {
    **{
        f"yolov8{s}-worldv2": _ultralytics(
            f"yolov8{s}-worldv2", f"yoloworldv2-{s}",
            f"YOLO-World v2 ({s}), converted from ultralytics; zero-shot, CLIP ViT-B/32 text encoder",
            YOLO_WORLD_TEXT_ENCODER,
        )
        for s in "smlx"
    },
    **{
        f"yolov8{s}-world": _ultralytics(
            f"yolov8{s}-world", f"yoloworld-{s}",
            f"YOLO-World v1 ({s}, ImagePoolingAttn), converted from ultralytics; CLIP ViT-B/32 text encoder",
            YOLO_WORLD_TEXT_ENCODER,
        )
        for s in "smlx"
    },
}  # fmt: skip
_YOLOE: dict[str, WeightsSpec] = {}
for _family, _sizes, _encoder in (("v8", "sml", _MOBILECLIP_B), ("11", "sml", _MOBILECLIP_B), ("26", "nsmlx", _MOBILECLIP2_B)):
    for _s in _sizes:
        _name = f"yoloe-{_family}{_s}-seg"
        _YOLOE[_name] = _ultralytics(
            _name, _name, f"YOLOE-{_family} ({_s}) with masks, text prompts, converted from ultralytics; {_encoder}",
            _encoder,
        )
        _YOLOE[f"{_name}-pf"] = _ultralytics(
            f"{_name}-pf", f"{_name}-pf",
            f"YOLOE-{_family} ({_s}) with masks, prompt-free: its built-in vocabulary (about 4,600 tags), no text",
            None,
        )

KNOWN_WEIGHTS: dict[str, WeightsSpec] = {
    "ovdet-synth": WeightsSpec(
        name="ovdet-synth",
        description=(
            "the default model: ovdet-n at 256 px with a tiny CLIP text tower, trained on a synthetic world of "
            "coloured shapes (tools/train_default.py); it proves the open-vocabulary mechanism, it is not a "
            "real-world detector"
        ),
        folder="ovdet-synth",
        license="AGPL-3.0-or-later",
        meta={"recipe": "python tools/train_default.py", "world": "world.json beside the weights"},
    ),
    **_YOLO_WORLD,
    **_YOLOE,
}
DEFAULT_WEIGHTS: str | None = "ovdet-synth"


def bundled_weights_dirs() -> list[Path]:
    """Where bundled weights are looked for: ``$OVDET_WEIGHTS``, the source checkout's ``weights/``, the wheel's."""
    dirs = []
    if os.environ.get("OVDET_WEIGHTS"):
        dirs.append(Path(os.environ["OVDET_WEIGHTS"]).expanduser())
    package = Path(__file__).resolve().parent.parent
    dirs += [package.parent / "weights", package / "_weights"]
    return dirs


def find_bundled(spec: WeightsSpec) -> Path | None:
    """The folder of a bundled model, or ``None`` if it is not on this machine."""
    if spec.folder is None:
        return None
    for root in bundled_weights_dirs():
        if (root / spec.folder / "config.json").is_file():
            return root / spec.folder
    return None
