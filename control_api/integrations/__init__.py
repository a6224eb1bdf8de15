"""Integrations: one file per kind of external system, the transactional outbox and its dispatcher.

``base.py`` is the contract every kind implements; ``registry.py`` is the one lookup from a stored
integration's ``kind`` to its connector; ``outbox.py`` writes deliveries inside the caller's transaction;
``dispatcher.py`` sends them with timeouts, retries, a breaker per integration and a dead-letter state.
"""
