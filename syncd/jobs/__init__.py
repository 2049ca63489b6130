"""Scheduled jobs: the job abstraction, the locked runner and the scheduler."""
