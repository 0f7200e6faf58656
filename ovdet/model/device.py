"""Where a model runs, how many threads it uses, and whether an input size fits: checked before any work starts.

``--device cuda`` on a machine without a GPU used to end in PyTorch's ``RuntimeError: Found no NVIDIA driver`` after
the model had loaded, and ``--imgsz 100000`` grew to tens of GB before the kernel killed it; both are now one clear
:class:`~ovdet.errors.ConfigError` up front.
"""

from __future__ import annotations

import logging
import os

import torch

from ..errors import ConfigError

__all__ = ["resolve_device", "set_threads", "default_threads", "check_memory", "inference_bytes_per_pixel"]

logger = logging.getLogger(__name__)

# Measured peak memory of one inference forward (float32, no grad) per input pixel, for YOLOv8-style CSPDarknets:
# ovdet-n (stem 16 channels) 77 B/px, yoloworldv2-s (32) 163 B/px, yoloworldv2-l (64) 343 B/px at 1536-3072 px
# (`ru_maxrss` around one predict). 4 bytes x (4 + 1.5 x stem channels) bounds all three from above.
_BYTES_PER_PIXEL_SMALLEST = 4 * (4 + 1.5 * 16)


def inference_bytes_per_pixel(stem_channels: int = 16) -> float:
    """Estimated peak memory of one inference forward per input pixel (bytes), from the stem's width."""
    return 4 * (4 + 1.5 * stem_channels)


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine.

    Raises:
        ConfigError: not a device name, or a GPU (CUDA index, MPS) this machine does not have; the message says
            what is available.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N (a GPU index) or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                f"this PyTorch ({torch.__version__}) was built without CUDA"
                if torch.version.cuda is None
                else "PyTorch finds no NVIDIA GPU or driver"
            )
            raise ConfigError(f"device {device!r}: no CUDA GPU is usable here ({why}); use --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {device!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"device {device!r}: Apple's MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ConfigError(f"device {device!r} is not supported; use cpu, cuda, cuda:N or mps")
    return dev


def default_threads() -> int:
    """CPU threads when none are asked for: the cores this process may use (its CPU affinity, which containers and
    ``taskset`` narrow), as PyTorch's own default. On a machine shared with other busy processes the CLI's passive
    OpenMP waiting keeps this from collapsing (README, *Threads*)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores)


def set_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads for PyTorch's operators (``None``: :func:`default_threads`); returns the number.

    Raises:
        ConfigError: fewer than 1.
    """
    n = default_threads() if threads is None else int(threads)
    if n < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(n)
    return n


def _available_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil
    except ImportError:  # pragma: no cover (psutil comes with ultralytics)
        return None
    return int(psutil.virtual_memory().available)


def check_memory(
    pixels: int, *, batch: int = 1, bytes_per_pixel: float = _BYTES_PER_PIXEL_SMALLEST, device: str | torch.device = "cpu"
) -> None:
    """Refuse an input size whose forward pass cannot fit in the memory available now.

    Args:
        pixels: Input pixels per image (H x W after letterboxing).
        batch: Images per forward pass.
        bytes_per_pixel: Peak memory per input pixel (default: the smallest shipped model's, a lower bound for all).
        device: Where the forward runs (its free memory is compared).

    Raises:
        ConfigError: the estimate exceeds the available memory; the message gives both and the fix.
    """
    need = pixels * batch * bytes_per_pixel
    have = _available_memory(torch.device(device))
    if have is not None and need > have:
        side = int(pixels**0.5)
        images = f" x {batch} images" if batch > 1 else ""
        raise ConfigError(
            f"an input of about {side}x{side} px{images} needs about {need / 2**30:.1f} GiB for one forward pass, "
            f"and {have / 2**30:.1f} GiB are available; use a smaller --imgsz" + (" or fewer images per batch" if batch > 1 else "")
        )
