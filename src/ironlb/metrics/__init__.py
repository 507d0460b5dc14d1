"""Prometheus exposition and health endpoints shared by ironlb's components."""
