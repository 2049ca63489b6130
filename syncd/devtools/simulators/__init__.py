"""In-process fakes of the vendors syncd talks to (never imported by syncd's clients)."""
