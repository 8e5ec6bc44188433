"""Helpers for the test suite: real tools, a real Prometheus, CRD schemas. Does I/O."""
