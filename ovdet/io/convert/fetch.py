"""Known weights published as ultralytics checkpoints: download once, convert, keep only the converted folder."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from ...errors import CheckpointError, WeightsUnavailableError
from ...model import OVDetector, load_detector
from ...text.cache import default_cache_dir
from ..weights import WeightsSpec
from .checkpoint import sha256

__all__ = ["converted_weights_dir", "fetch_and_convert"]

logger = logging.getLogger(__name__)


def converted_weights_dir() -> Path:
    """Where downloaded and converted known weights are kept: ``<ovdet cache>/weights``."""
    return default_cache_dir() / "weights"


def fetch_and_convert(spec: WeightsSpec, *, device: str = "cpu") -> OVDetector:
    """``ovdet.load(name)`` for known weights published as ultralytics checkpoints: download once, convert, cache.

    The converted folder goes to :func:`converted_weights_dir` and later loads need no network and no pickle. The
    downloaded file is unpickled without asking because its address is the official ultralytics release, fixed in
    ``ovdet/io/weights.py``, not something a caller passes in.

    Raises:
        WeightsUnavailableError: the download failed (offline); the message says how to download and convert by hand.
        CheckpointError: the download does not match the expected digest.
    """
    from . import from_ultralytics

    assert spec.url, spec
    folder = converted_weights_dir() / spec.name
    if (folder / "config.json").is_file():
        return load_detector(folder, device=device)
    file_name = spec.url.rsplit("/", 1)[-1]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=folder.parent))
    try:
        path = tmp / file_name
        try:
            _download(spec.url, path)
        except OSError as e:  # URLError, timeouts, refused connections: all OSErrors
            raise WeightsUnavailableError(
                f"cannot download '{spec.name}' from {spec.url} ({e}). ovdet downloads and converts it once, then "
                f"works offline. Without network: fetch that file on another machine, copy it here and run "
                f"`ovdet convert ultralytics {file_name} {folder} --trust-pickle`; ovdet.load('{spec.name}') then "
                "finds it"
            ) from e
        if spec.sha256 and sha256(path) != spec.sha256:
            raise CheckpointError(f"the download of '{spec.name}' from {spec.url} is corrupt (sha256 mismatch); retry")
        logger.info("converting %s to %s", file_name, folder)
        model = from_ultralytics(path, trust_pickle=True)  # the official release address, see the docstring
        model.metadata["weights"] = {"name": spec.name, "url": spec.url, "license": spec.license}
        model.save(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return load_detector(folder, device=device)


def _download(url: str, path: Path, *, timeout: float = 30.0) -> None:
    """Stream ``url`` into ``path`` with a progress bar."""
    import urllib.request

    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=timeout) as response, path.open("wb") as f:  # noqa: S310 (fixed https)
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, disable=None) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                f.write(block)
                bar.update(len(block))
