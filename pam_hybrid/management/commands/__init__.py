"""pam_usage, pam_breaker and replay_conversation: one module per command."""
