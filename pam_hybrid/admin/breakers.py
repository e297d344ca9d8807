"""Admin for provider circuit breakers: their recorded state changes (read-only), and the status page where staff
see each breaker live and reset or force one open.

The page is for staff (`admin.site.admin_view`) who may also view breaker events (`view_breakerevent`); acting on a
breaker takes the `operate_breaker` permission (superusers have both). Anyone else gets 403 and nothing changes.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse

from pam_hybrid.breakers import BreakerUnavailable
from pam_hybrid.breakers.selectors import breaker_event_list_recent, breaker_provider_names
from pam_hybrid.breakers.wiring import (
    ActionOutcome,
    BreakerAction,
    BreakerReading,
    breaker_act,
    breaker_readings,
    breaker_state_shared,
    provider_breaker,
)
from pam_hybrid.conf import pam_settings
from pam_hybrid.models import BreakerEvent

RECENT_EVENTS = 20
VIEW_PERMISSION = "pam_hybrid.view_breakerevent"
OPERATE_PERMISSION = "pam_hybrid.operate_breaker"


@admin.register(BreakerEvent)
class BreakerEventAdmin(admin.ModelAdmin[BreakerEvent]):
    list_display = ("at", "provider", "from_state", "to_state", "reason", "actor")
    list_filter = ("provider", "to_state")
    readonly_fields = ("at", "provider", "from_state", "to_state", "reason", "actor")
    change_list_template = "admin/pam_hybrid/breakers_changelist.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: BreakerEvent | None = None) -> bool:
        return False


class BreakerActionForm(forms.Form):
    provider = forms.ChoiceField()
    action = forms.ChoiceField(choices=[("reset", "Reset"), ("open", "Force open")])
    note = forms.CharField(required=False, max_length=200, strip=True)

    def __init__(self, data: QueryDict, *, providers: list[str]) -> None:
        super().__init__(data)
        provider = self.fields["provider"]
        assert isinstance(provider, forms.ChoiceField)
        provider.choices = [(name, name) for name in providers]


# Under daphne a sync view runs in a worker thread, and async_to_sync from there runs the coroutine on the server's
# event loop, where the answers run: the page reads and changes the very breaker the gateway uses. Without a server
# loop (Django's sync test client) each call gets a loop of its own, which still reaches the same state (one store
# per process, or Redis), though with Redis each such call opens a client of its own.


async def _readings(providers: list[str]) -> list[BreakerReading]:
    return await breaker_readings(provider_breaker(), providers)


async def _act(action: BreakerAction, provider: str, actor: str, note: str) -> ActionOutcome:
    return await breaker_act(
        provider_breaker(), action=action, provider=provider, actor=actor, origin="from the admin page", note=note
    )


def breaker_status_view(request: HttpRequest) -> HttpResponse:
    """GET: every known provider's breaker and the recent transitions. POST: reset or force open one (with the
    `operate_breaker` permission), then back here with a message saying what happened."""
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    providers = breaker_provider_names(settings=pam_settings())
    if request.method == "POST":
        if not request.user.has_perm(OPERATE_PERMISSION):
            raise PermissionDenied
        return _post(request, providers)
    context = {
        **admin.site.each_context(request),
        "title": "Circuit breakers",
        "readings": async_to_sync(_readings)(providers),
        "events": breaker_event_list_recent(limit=RECENT_EVENTS),
        "shared": breaker_state_shared(),
        "can_operate": request.user.has_perm(OPERATE_PERMISSION),
    }
    return TemplateResponse(request, "admin/pam_hybrid/breakers.html", context)


def _post(request: HttpRequest, providers: list[str]) -> HttpResponse:
    form = BreakerActionForm(request.POST, providers=providers)
    if not form.is_valid():
        problems = "; ".join(f"{field}: {error}" for field, errors in form.errors.items() for error in errors)
        messages.error(request, f"Nothing changed ({problems}).")
    else:
        data = form.cleaned_data
        try:
            outcome = async_to_sync(_act)(data["action"], data["provider"], request.user.get_username(), data["note"])
        except BreakerUnavailable:
            messages.error(request, "The shared breaker store (Redis) could not be reached: nothing changed.")
        else:
            messages.success(request, outcome.message)
    return HttpResponseRedirect(reverse("pam_breakers"))
