"""Shared fixtures: the repository root and benchmarks/ on sys.path, and small resolved configurations."""
import importlib
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))     # the benchmarks' helpers are tested too

from config import load_config  # noqa: E402


@pytest.fixture
def tiny_cfg(tmp_path):
    """The `tiny` preset rooted in a fresh directory, with the shipped stand-in noise file."""
    return load_config("tiny", [f"noise_file={REPO / 'data' / 'standin_baryon_T64.h5'}"], tmp_path)


def need(module: str):
    """An optional package (requirements-formats.txt), or skip the test -- except in CI, which
    installs them and must test every format: there a missing package fails the test."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)
