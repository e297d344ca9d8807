"""ASGI entry point: HTTP goes to Django (static files through WhiteNoise's middleware), WebSockets to the chat
consumer."""

from __future__ import annotations

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pam_project.settings")

# Django must be set up before anything that imports models (the consumer, the auth middleware).
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from pam_hybrid.chat.origin import SameOriginValidator  # noqa: E402
from pam_hybrid.chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_http,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far (Django, the SDKs, the app: about 265,000 objects) lives for the whole process.
# Moving it out of the collector's reach takes full collections from about 165 ms (a pause felt by every
# stream of the process) to the size of what requests create.
gc.freeze()
