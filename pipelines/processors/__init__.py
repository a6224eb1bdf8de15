"""Our frame processors: RAG context, latency meter, transcript and recording, barge-in."""
