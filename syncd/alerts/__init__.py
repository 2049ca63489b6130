"""Outbound alerts: the outbox deliverer, Standard Webhooks signing, the Alertmanager format."""
