"""Locust load tests for the WattChain API (see docs/api.md, "Load tests")."""
