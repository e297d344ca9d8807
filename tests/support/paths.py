"""Where the repository is, for tests that run its commands or start its server."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: manage.py, pam_project and pam_hybrid are here."""
