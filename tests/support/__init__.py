"""Shared test support (real Podman environment, helpers used by several suites)."""
