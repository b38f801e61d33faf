"""Figures: matplotlib without a display, and PNG files written atomically."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from io_utils import atomic_output  # noqa: E402

__all__ = ["plt", "save_png", "subplots"]


def subplots(nrows: int = 1, ncols: int = 1, *, figsize, left=0.8, right=0.2, bottom=0.55, top=0.4, wspace=0.3,
             **kwargs):
    """``plt.subplots`` with fixed margins around the axes, in inches: a fixed layout costs nothing,
    where matplotlib's constrained layout measures every text of every figure again (a third of the
    time of the analysis' plots)."""
    width, height = figsize
    kwargs["gridspec_kw"] = {**kwargs.get("gridspec_kw", {}), "left": left / width, "right": 1 - right / width,
                             "bottom": bottom / height, "top": 1 - top / height, "wspace": wspace / (width / ncols)}
    return plt.subplots(nrows, ncols, figsize=figsize, **kwargs)


def save_png(fig, path, dpi: int = 100) -> None:
    """Write ``fig`` as a PNG at ``path`` (atomically) and close it."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
