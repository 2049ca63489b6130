"""Configuration: sections, one TOML/environment reader, checks."""
