"""Codelocks K3 pull jobs, the quota ledger and the budget planner."""
