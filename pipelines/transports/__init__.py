"""Transports of our own (in-memory, for tests and benchmarks)."""
