"""Spoken evaluation of the voice path on the demo knowledge base."""
