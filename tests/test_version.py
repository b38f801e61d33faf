"""The software version is one string (version.py), recorded in every output's provenance and
equal to the version CITATION.cff cites."""
import re
from pathlib import Path

from config import load_config
from io_utils import provenance
from version import __version__

REPO = Path(__file__).resolve().parents[1]


def test_provenance_records_the_version_beside_the_code_version():
    record = provenance(load_config("tiny"))
    assert record["version"] == __version__ and "code_version" in record


def test_citation_and_changelog_name_the_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    citation = (REPO / "CITATION.cff").read_text()
    assert re.search(rf'^version: "?{re.escape(__version__)}"?$', citation, re.M), \
        "CITATION.cff's version differs from version.py's"
    assert f"## [{__version__}]" in (REPO / "CHANGELOG.md").read_text()
