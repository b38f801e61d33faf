"""Figures: matplotlib without a display, and PNG files written atomically."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from io_utils import atomic_output  # noqa: E402

__all__ = ["plt", "save_png"]


def save_png(fig, path, dpi: int = 100) -> None:
    """Write ``fig`` as a PNG at ``path`` (atomically) and close it."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
