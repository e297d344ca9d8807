"""The app's exception tree. Every error a user may see carries a message written for users.

    PamError
    ├── BadInput            the client's frame or message is unusable
    ├── ToolError           a tool's own error, returned to the model (pam_hybrid.tools.base)
    └── ProviderError       a model call failed (translated from SDK errors at the provider boundary)
        ├── ProviderUnavailable   connection refused/reset, 5xx, in-band overload
        ├── ProviderTimedOut      no first token / no token for too long / whole answer too long
        ├── ProviderRateLimited   429
        ├── ProviderRejected      400/401/403/404: our request or our configuration is wrong
        └── StreamInterrupted     the stream ended without its final event
"""

from __future__ import annotations


class PamError(Exception):
    user_message = "Something went wrong. Please try again."

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class BadInput(PamError):
    user_message = "That message could not be understood."


class ProviderError(PamError):
    user_message = "The model could not answer right now. Please try again."


class ProviderUnavailable(ProviderError):
    user_message = "The model provider is unavailable right now. Please try again in a moment."


class ProviderTimedOut(ProviderError):
    user_message = "The model took too long to respond. Please try again."


class ProviderRateLimited(ProviderError):
    user_message = "The model provider is busy (rate limited). Please try again shortly."


class ProviderRejected(ProviderError):
    user_message = "The model provider refused the request. An administrator has been notified."


class StreamInterrupted(ProviderError):
    user_message = "The answer was interrupted before it finished."
