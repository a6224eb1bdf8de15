"""Transports' endpoints: each turns its media into pipeline frames and back (WebRTC, WebSocket, HTTP transcription)."""
