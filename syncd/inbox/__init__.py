"""Pushed vendor events: parsing, durable group-committed intake, and the worker that acts on them."""
