"""Staff replay of a conversation: its user turns re-run through today's gateway and compared turn by turn."""
