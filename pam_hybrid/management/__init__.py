"""Management commands for staff: usage reports, breaker control, conversation replay."""
