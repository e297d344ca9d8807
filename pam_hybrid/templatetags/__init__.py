"""Template filters for the staff pages (usage figures)."""
