"""Call lifecycle: admission, the call registry, one call session and its sink, call setup, the agent's tools."""
