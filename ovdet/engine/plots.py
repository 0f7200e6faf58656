"""Training curves as PNG files (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_curves"]


def plot_curves(run: Path, history: list[dict[str, Any]]) -> None:
    """Write ``loss.png`` (box, cls, dfl per epoch) and ``ap.png`` (validation AP and AP50) into ``run``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_write_bytes

    epochs = [row["epoch"] for row in history]
    for name, keys, ylabel in (("loss", ("box", "cls", "dfl"), "loss"), ("ap", ("AP", "AP50"), "validation AP")):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for key in keys:
            points = [(e, row[key]) for e, row in zip(epochs, history) if row.get(key) not in (None, "")]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        import io

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        plt.close(fig)
        atomic_write_bytes(run / f"{name}.png", buffer.getvalue())
