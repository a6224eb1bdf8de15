"""Phone calls over SIP (issue 17): a UAS on aiosipua + aiortp answering trunks and PBXs, one call per dialog.

``SipEndpoint`` takes INVITEs, admits them per trunk, and starts each call through the one call setup
(``VoiceService.admit`` + ``start_call``) with :class:`~agent.transports.sip.media.SipMedia` as its media.
"""

from agent.transports.sip.endpoint import SipEndpoint

__all__ = ["SipEndpoint"]
