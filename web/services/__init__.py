"""Use cases of the web tier; each owns its transaction (views stay thin)."""
