"""The app's exception tree. Every error a user may see carries a message written for users.

    PamError
    ├── BadInput            the client's frame or message is unusable
    ├── MessageNotFound     the message an edit or a regenerate names is not one of the user's
    ├── ToolError           a tool's own error, returned to the model (pam_hybrid.tools.base)
    └── ProviderError       a model call failed (translated from SDK errors at the provider boundary)
        ├── ProviderUnavailable   connection refused/reset, 5xx, in-band overload, malformed stream
        │   └── CircuitOpen       its circuit breaker is open: not called at all
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


class MessageNotFound(PamError):
    user_message = "That message was not found."


class ProviderError(PamError):
    user_message = "The model could not answer right now. Please try again."
    retryable = True
    """Whether the same call may succeed if made again (and whether it says anything about the provider's health)."""
    retry_after_s: float | None = None
    """The provider's own Retry-After, when it sent one."""
    reason_phrase = "failed"
    """What went wrong, in a few words for a sentence such as "OpenAI was unavailable"."""


class ProviderUnavailable(ProviderError):
    user_message = "The model provider is unavailable right now. Please try again in a moment."
    reason_phrase = "unavailable"


class ProviderTimedOut(ProviderError):
    user_message = "The model took too long to respond. Please try again."
    reason_phrase = "too slow to respond"


class ProviderRateLimited(ProviderError):
    user_message = "The model provider is busy (rate limited). Please try again shortly."
    reason_phrase = "rate limited"


class ProviderRejected(ProviderError):
    user_message = "The model provider refused the request. An administrator has been notified."
    reason_phrase = "refused the request"
    retryable = False


class CircuitOpen(ProviderUnavailable):
    user_message = "The model provider is temporarily unavailable after repeated failures. Please try again shortly."
    reason_phrase = "paused after repeated failures"

    @classmethod
    def forced(cls, detail: str) -> CircuitOpen:
        """Staff forced the breaker open (maintenance): no failures to speak of, and no probe until it is reset."""
        error = cls(detail, user_message="The model provider has been taken out of service by the administrators "
                                         "for now. Please try again later.")
        error.reason_phrase = "taken out of service"
        return error


class StreamInterrupted(ProviderError):
    user_message = "The answer was interrupted before it finished."
    reason_phrase = "interrupted"

    @classmethod
    def before_any_text(cls, detail: str) -> StreamInterrupted:
        """The stream ended, cleanly or not, before a single token: there is nothing to be "interrupted"."""
        error = cls(detail, user_message="The model ended its answer without writing anything. Please try again.")
        error.reason_phrase = "ended without answering"
        return error
