"""The version of this software, recorded in every output's provenance (io_utils.provenance).

Releases and what changed between them: CHANGELOG.md.  Keep it equal to CITATION.cff's version.
"""
__version__ = "0.9.0"
