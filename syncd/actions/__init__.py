"""Operator actions on vendors, each written to the action log."""
