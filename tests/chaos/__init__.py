"""Fault injection (issue 7): scripts run by `make chaos`, never collected by pytest."""
