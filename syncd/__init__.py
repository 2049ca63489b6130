"""syncd: keeps PostgreSQL in step with device vendors and raises alerts on drift."""

__version__ = "0.1.0"
