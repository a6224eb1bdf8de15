"""Voxdesk agent: the CLI, call sessions, persona and tools, handoff, transports' endpoints, and wiring."""
