"""Operator tooling: `miaofa-ops`, for dead-letter queues and reconciliation reports."""
