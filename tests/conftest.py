"""Shared fixtures.

The face photos live outside the repository (``../shared/facedata``, or wherever
``FACEGATE_TESTDATA`` points): they are third-party research data that must not be
committed. Tests that need them take the ``facedata`` fixture, which skips with a clear
reason where the folder is absent; ``.ci/run`` sets ``FACEGATE_REQUIRE_TESTDATA=1`` so that
in CI a missing folder is a failure, not a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pi_facegate.paths import facedata_dir


def _facedata_or_skip() -> Path:
    root = facedata_dir()
    if root.is_dir() and any(root.iterdir()):
        return root
    reason = (
        f"shared face data not found at {root} "
        "(set FACEGATE_TESTDATA to the folder holding att_faces/, yalefaces/, ...)"
    )
    if os.environ.get("FACEGATE_REQUIRE_TESTDATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def facedata() -> Path:
    """Root of the shared face photos (skips, or fails in CI, where absent)."""
    return _facedata_or_skip()
