"""The app's own PAM_* knobs, read from Django settings (which read the environment) with their defaults.

Read through `pam_settings()` each time rather than at import, so tests can override settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings


@dataclass(frozen=True, slots=True)
class PamSettings:
    openai_api_key: str
    openai_base_url: str
    anthropic_api_key: str
    anthropic_base_url: str
    simple_model: str
    complex_model: str
    max_output_tokens: int
    context_token_budget: int
    max_message_chars: int
    max_frame_bytes: int
    connect_timeout_ms: int
    first_token_timeout_ms: int
    idle_timeout_ms: int
    total_timeout_ms: int
    thinking_timeout_ms: int
    anthropic_prompt_cache: bool
    anthropic_cache_ttl: str
    sdk_max_retries: int
    offline_token_delay_ms: int
    signup_enabled: bool
    anonymous_chat: bool
    tools_enabled: bool
    max_tool_rounds: int
    resume_grace_ms: int
    checkpoint_interval_ms: int
    shutdown_grace_ms: int
    max_concurrent_answers: int
    max_sockets_per_user: int
    rate_limit_messages: int
    rate_limit_window_ms: int
    daily_spend_cap_usd: str
    budget_routing_at: float
    """PAM_BUDGET_ROUTING_AT: the share of the daily cap spent from which `auto` takes the simple route (0: never)."""
    retries: int
    retry_backoff_ms: int
    retry_deadline_ms: int
    breaker_failures: int
    breaker_window_ms: int
    breaker_failure_rate: float
    breaker_min_calls: int
    breaker_cooldown_ms: int
    breaker_probes: int
    redis_connections: int
    redis_pool_timeout_ms: int
    router_threshold: float | None
    """PAM_ROUTER_THRESHOLD: the router's score from which a query takes the complex route (None: the model's)."""
    metrics_token: str = field(repr=False)
    """PAM_METRICS_TOKEN: a bearer token that may read /metrics (empty: staff sessions only)."""


def pam_settings() -> PamSettings:
    s = settings
    return PamSettings(
        openai_api_key=getattr(s, "OPENAI_API_KEY", ""),
        openai_base_url=getattr(s, "OPENAI_BASE_URL", ""),
        anthropic_api_key=getattr(s, "ANTHROPIC_API_KEY", ""),
        anthropic_base_url=getattr(s, "ANTHROPIC_BASE_URL", ""),
        simple_model=getattr(s, "PAM_SIMPLE_MODEL", "gpt-4o-mini"),
        complex_model=getattr(s, "PAM_COMPLEX_MODEL", "claude-sonnet-5-5"),
        max_output_tokens=getattr(s, "PAM_MAX_OUTPUT_TOKENS", 1024),
        context_token_budget=getattr(s, "PAM_CONTEXT_TOKEN_BUDGET", 6000),
        max_message_chars=getattr(s, "PAM_MAX_MESSAGE_CHARS", 32000),
        max_frame_bytes=getattr(s, "PAM_MAX_FRAME_BYTES", 256 * 1024),
        connect_timeout_ms=getattr(s, "PAM_CONNECT_TIMEOUT_MS", 5000),
        first_token_timeout_ms=getattr(s, "PAM_FIRST_TOKEN_TIMEOUT_MS", 30000),
        idle_timeout_ms=getattr(s, "PAM_IDLE_TIMEOUT_MS", 30000),
        total_timeout_ms=getattr(s, "PAM_TOTAL_TIMEOUT_MS", 300000),
        thinking_timeout_ms=getattr(s, "PAM_THINKING_TIMEOUT_MS", 120000),
        anthropic_prompt_cache=getattr(s, "PAM_ANTHROPIC_PROMPT_CACHE", True),
        anthropic_cache_ttl=getattr(s, "PAM_ANTHROPIC_CACHE_TTL", "5m"),
        sdk_max_retries=getattr(s, "PAM_SDK_MAX_RETRIES", 0),
        offline_token_delay_ms=getattr(s, "PAM_OFFLINE_TOKEN_DELAY_MS", 30),
        signup_enabled=getattr(s, "PAM_SIGNUP_ENABLED", False),
        anonymous_chat=getattr(s, "PAM_ANONYMOUS_CHAT", False),
        tools_enabled=getattr(s, "PAM_TOOLS_ENABLED", True),
        max_tool_rounds=getattr(s, "PAM_MAX_TOOL_ROUNDS", 3),
        resume_grace_ms=getattr(s, "PAM_RESUME_GRACE_MS", 10000),
        checkpoint_interval_ms=getattr(s, "PAM_CHECKPOINT_INTERVAL_MS", 5000),
        shutdown_grace_ms=getattr(s, "PAM_SHUTDOWN_GRACE_MS", 20000),
        max_concurrent_answers=getattr(s, "PAM_MAX_CONCURRENT_ANSWERS", 3),
        max_sockets_per_user=getattr(s, "PAM_MAX_SOCKETS_PER_USER", 20),
        rate_limit_messages=getattr(s, "PAM_RATE_LIMIT_MESSAGES", 30),
        rate_limit_window_ms=getattr(s, "PAM_RATE_LIMIT_WINDOW_MS", 60000),
        daily_spend_cap_usd=str(getattr(s, "PAM_DAILY_SPEND_CAP_USD", "5")),
        budget_routing_at=getattr(s, "PAM_BUDGET_ROUTING_AT", 0.8),
        retries=getattr(s, "PAM_RETRIES", 2),
        retry_backoff_ms=getattr(s, "PAM_RETRY_BACKOFF_MS", 250),
        retry_deadline_ms=getattr(s, "PAM_RETRY_DEADLINE_MS", 8000),
        breaker_failures=getattr(s, "PAM_BREAKER_FAILURES", 5),
        breaker_window_ms=getattr(s, "PAM_BREAKER_WINDOW_MS", 60000),
        breaker_failure_rate=getattr(s, "PAM_BREAKER_FAILURE_RATE", 0.5),
        breaker_min_calls=getattr(s, "PAM_BREAKER_MIN_CALLS", 10),
        breaker_cooldown_ms=getattr(s, "PAM_BREAKER_COOLDOWN_MS", 30000),
        breaker_probes=getattr(s, "PAM_BREAKER_PROBES", 1),
        redis_connections=getattr(s, "PAM_REDIS_CONNECTIONS", 200),
        redis_pool_timeout_ms=getattr(s, "PAM_REDIS_POOL_TIMEOUT_MS", 5000),
        router_threshold=getattr(s, "PAM_ROUTER_THRESHOLD", None),
        metrics_token=getattr(s, "PAM_METRICS_TOKEN", ""),
    )
