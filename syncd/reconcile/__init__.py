"""Reconcile: pure rules (data and `now` in, verdicts out) and the set-based SQL behind them."""
