"""LiveKit for more calls than one machine carries (issue 17).

The ``voxdesk worker`` job entry point, tokens, SIP dispatch set-up and verified webhooks. LiveKit's SFU, SIP
service and agent dispatch are the distributed engine; each dispatched job runs the same ``build_pipeline()``
through ``VoiceService.start_call``.
"""
