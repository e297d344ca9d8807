"""Users for the tools' tests, made without a password: hashing one costs ~0.3 s of CPU per user."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="alice")


@pytest.fixture
def mallory(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="mallory")
