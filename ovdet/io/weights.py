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


# ultralytics' official YOLO-World v2 releases (the addresses its own downloader uses). They are pickles: ovdet
# downloads, converts (trusting them because these addresses are fixed here, not passed in) and caches them once.
_ULTRALYTICS_RELEASE = "https://github.com/ultralytics/assets/releases/download/v8.4.0"
_YOLO_WORLD: dict[str, WeightsSpec] = {
    f"yolov8{s}-worldv2": WeightsSpec(
        name=f"yolov8{s}-worldv2",
        description=f"YOLO-World v2 ({s}), converted from ultralytics; zero-shot, CLIP ViT-B/32 text encoder",
        url=f"{_ULTRALYTICS_RELEASE}/yolov8{s}-worldv2.pt",
        license="AGPL-3.0 (Ultralytics)",
        meta={"architecture": f"yoloworldv2-{s}", "source": "ultralytics", "text_encoder": YOLO_WORLD_TEXT_ENCODER},
    )
    for s in "smlx"
}

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
