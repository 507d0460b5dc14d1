"""Test and benchmark infrastructure (never shipped): control planes, labs, child-process harnesses, waits."""
