"""Login throttling (django-axes) on both login forms: after AXES_FAILURE_LIMIT wrong passwords for a username from
one address even the right password is refused until the cool-off; a success before that clears the count."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"
PAGES = {"/accounts/login/": "/", "/admin/login/": "/admin/"}


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    """Staff, so that the right password opens the admin too."""
    return django_user_model.objects.create_user(username="carol", password=PASSWORD, is_staff=True)


def try_login(client: Client, page: str, password: str) -> int:
    response = client.post(page, {"username": "carol", "password": password, "next": PAGES[page]})
    return response.status_code


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("page", list(PAGES))
def test_the_right_password_after_eight_wrong_ones_is_refused(client: Client, staff: Any, page: str) -> None:
    assert [try_login(client, page, f"wrong-{n}") for n in range(8)][:4] == [200] * 4
    status = try_login(client, page, PASSWORD)
    assert status == 429
    assert not signed_in(client)


@pytest.mark.parametrize("page", list(PAGES))
def test_a_success_before_the_limit_clears_the_count(client: Client, staff: Any, settings: Any, page: str) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    for _ in range(2):
        assert [try_login(client, page, f"wrong-{n}") for n in range(4)] == [200] * 4
        assert try_login(client, page, PASSWORD) == 302
        assert signed_in(client)
        client.logout()


def test_a_lockout_on_one_form_holds_on_the_other(client: Client, staff: Any) -> None:
    for n in range(5):
        try_login(client, "/accounts/login/", f"wrong-{n}")
    assert try_login(client, "/admin/login/", PASSWORD) == 429
    assert not signed_in(client)


def test_another_username_from_the_same_address_is_not_locked(
    client: Client, staff: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_user(username="dave", password=PASSWORD)
    for n in range(8):
        try_login(client, "/accounts/login/", f"wrong-{n}")
    response = client.post("/accounts/login/", {"username": "dave", "password": PASSWORD})
    assert response.status_code == 302 and signed_in(client)


def test_force_login_and_signup_are_not_throttled(client: Client, staff: Any, settings: Any) -> None:
    for n in range(8):
        try_login(client, "/accounts/login/", f"wrong-{n}")
    client.force_login(staff)
    assert client.get("/").status_code == 200
    client.logout()
    settings.PAM_SIGNUP_ENABLED = True
    response = client.post("/accounts/signup/", {"username": "erin", "password1": PASSWORD,
                                                 "password2": PASSWORD})
    assert response.status_code == 302 and signed_in(client)
