"""Each pricing test starts and ends with no staff overrides in this process's copy (the database's are rolled
back after each test; the in-memory copy must follow)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pam_hybrid.pricing import forget_overrides


@pytest.fixture(autouse=True)
def _no_overrides_left_behind() -> Iterator[None]:
    forget_overrides()
    yield
    forget_overrides()
