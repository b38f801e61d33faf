"""The README's two commands on a fresh machine (Makefile): which interpreter they install into and
run, and the project's virtual environment .venv made where no environment is active (a system
Python that refuses pip installs, PEP 668, makes it as well as any)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make(*args, **env_changes):
    """make ARGS in the repository, in an environment without an active virtual or conda environment
    (and no PYTHON), as a top-level make (not one nested in `make test`), with ``env_changes`` on top."""
    dropped = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(env_changes)
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_no_active_environment_uses_the_project_venv(tmp_path):
    venv = tmp_path / "venv"
    dry = make("-n", "test", f"VENV={venv}", "BASE_PYTHON=/some/python3")
    assert dry.returncode == 0, dry.stderr
    assert f"/some/python3 -m venv {venv}" in dry.stdout
    assert f"{venv}/bin/python -m pip install -q -r requirements.txt" in dry.stdout
    assert f"{venv}/bin/python -m pytest -q" in dry.stdout
    assert " python3 -m pip" not in dry.stdout and not venv.exists()


@pytest.mark.parametrize("active", ["VIRTUAL_ENV", "CONDA_PREFIX"])
def test_an_active_environment_is_used_as_it_is(active, tmp_path):
    dry = make("-n", "test", f"VENV={tmp_path / 'venv'}", **{active: str(tmp_path / "env")})
    assert dry.returncode == 0, dry.stderr
    assert "-m venv" not in dry.stdout and "venv/bin/python" not in dry.stdout
    assert "python3 -m pip install -q -r requirements.txt" in dry.stdout and "python3 -m pytest -q" in dry.stdout


def test_python_given_is_used_as_it_is(tmp_path):
    dry = make("-n", "demo", f"PYTHON={sys.executable}", f"VENV={tmp_path / 'venv'}")
    assert dry.returncode == 0, dry.stderr
    assert "-m venv" not in dry.stdout and f"{sys.executable} run_pipeline.py" in dry.stdout


def test_a_failed_venv_says_what_to_install_and_leaves_nothing(tmp_path):
    """As on Debian without python3-venv: `python3 -m venv` makes the directory, then fails
    (no ensurepip)."""
    base = tmp_path / "python3"
    base.write_text("#!/bin/sh\nmkdir -p \"$3/bin\" && touch \"$3/bin/python\"\n"
                    "echo 'The virtual environment was not created successfully because ensurepip is not "
                    "available.' >&2\nexit 1\n")
    base.chmod(0o755)
    venv = tmp_path / "venv"
    run = make("venv", f"VENV={venv}", f"BASE_PYTHON={base}")
    assert run.returncode != 0 and not venv.exists()
    errors = [line for line in run.stderr.splitlines() if not line.startswith("make:")]
    assert len(errors) == 1 and "apt install python3-venv" in errors[0] and str(base) in errors[0]


def test_the_venv_is_made_once_and_installs_go_into_it(tmp_path):
    """A real .venv, made with this interpreter (or the system one where it refuses pip installs,
    PEP 668: what `make test` meets on a stock Debian 12 or Ubuntu >= 23.04)."""
    system = Path("/usr/bin/python3")
    base = system if (system.is_file() and subprocess.run([str(system), "-c", "import ensurepip"]).returncode == 0
                      ) else Path(sys.executable)
    venv = tmp_path / "venv"
    run = make("venv", f"VENV={venv}", f"BASE_PYTHON={base}")
    assert run.returncode == 0, run.stderr
    python = venv / "bin" / "python"
    prefix = subprocess.run([str(python), "-c", "import sys; print(sys.prefix != sys.base_prefix)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert prefix == "True"
    pip = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, text=True, check=True).stdout
    assert str(venv) in pip                       # pip installs into the venv, not into BASE_PYTHON
    again = make("venv", f"VENV={venv}", f"BASE_PYTHON={base}")
    assert again.returncode == 0 and "making the virtual environment" not in again.stdout
