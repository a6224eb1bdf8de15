"""The SIP endpoint of ``voxdesk serve``: a UAS (aiosipua over UDP) that answers trunks and PBXs.

Each INVITE is admitted per trunk (source address and/or digest login, a call limit per trunk: 486 over it),
routed to a persona by the dialled number, admitted by the voice service like any call (``VoiceService.admit``),
then set up by ``VoiceService.start_call`` with :class:`SipMedia` (channel ``sip``, the caller ID stored in the
call's ``caller_number``, never logged). The caller's ACK connects the media (the greeting starts); the caller's
BYE ends the call (``caller_hangup``); a call ended here (``end_call``, timeouts) sends BYE. CANCEL before the
answer gets 487 and frees everything; re-INVITE holds and resumes; DTMF (RFC 4733 or SIP INFO) "0" asks for a
person (the live handoff), and, where no handoff takes the call and a transfer target is configured, the call
is cold-transferred with REFER. Codecs: G.722 whenever the caller offers it (:func:`answer_codecs`), else PCMU or
PCMA in the caller's order. What is not supported is refused: 488 for an offer without a common codec (or
without SDP), 405 with ``Allow`` for other methods, 603 for a caller's REFER, 415 for an INFO body other than
DTMF. Oversized datagrams are dropped before parsing; a request missing mandatory headers gets 400 (aiosipua).

Gaps aiosipua leaves, filled here small: no ACK callback (the ACK handler is wrapped), no INFO handler, no
server-side digest (``trunks.py``), and a Python 3.11 ``assert`` in its UDP protocol (its own protocol class is
replaced by one without it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import socket
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from aiortp.codecs import PayloadType, get_codec
from aiosipua import IncomingCall, SipRequest, SipUAC, SipUAS
from aiosipua.rtp_bridge import CallSession as RtpSession
from aiosipua.sdp import SdpMessage
from aiosipua.sdp_negotiate import SdpNegotiationError, negotiate_sdp
from aiosipua.transport import SipTransport, TcpSipTransport, UdpSipTransport
from pipecat.audio.utils import create_file_resampler

from agent.calls.handoff import CallHandoff
from agent.calls.media import CallRequest
from agent.calls.service import VoiceService
from agent.transports.digits import DIGITS, caller_digit
from agent.transports.sip.media import PHONE_RATE, PTIME_S, AudioFormat, SipMedia
from agent.transports.sip.metrics import (
    SIP_BUSY_ANSWERED,
    SIP_DROPPED,
    SIP_LISTENING,
    SIP_REFUSED,
    SIP_REQUESTS,
    SIP_TRUNK_CALLS,
)
from agent.transports.sip.trunks import Trunk, TrunkTable, parse_networks
from config.settings import TelephonySettings
from control_api.problems import ProblemError
from control_api.services.personas import DEFAULT_PERSONA

log = structlog.get_logger(__name__)
NARROWBAND = [int(PayloadType.PCMU), int(PayloadType.PCMA)]  # G.711, 8 kHz: chosen in the caller's order
WIDEBAND = int(PayloadType.G722)  # G.722, 16 kHz audio (RTP clock 8 kHz, RFC 3551): the pipeline's own rate
ALLOWED = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK, NOTIFY"
_INFO_TYPES = ("application/dtmf-relay", "application/dtmf")
BUSY_WAV = Path(__file__).with_name("busy.wav")
MAX_BUSY_ANSWERS = 8  # busy messages playing at once; more callers over a limit get 486
BUSY_ACK_WAIT_S = 4.0  # the message starts at the caller's ACK (or this long after the 200 OK)


class _Datagrams(asyncio.DatagramProtocol):
    """UDP protocol of the SIP transport: oversized datagrams dropped unparsed, the rest to aiosipua."""

    def __init__(self, owner: BoundedUdpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) > self._owner.max_bytes:
            SIP_DROPPED.inc()
            return
        if not data.strip():
            return  # a keep-alive (RFC 5626 CRLF)
        self._owner._dispatch(data, (str(addr[0]), int(addr[1])))


@dataclass
class BoundedUdpTransport(UdpSipTransport):
    """aiosipua's UDP transport with a size limit on what it parses."""

    max_bytes: int = 8192

    async def start(self) -> None:
        """Bind (raises OSError when the port is taken)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self), local_addr=self.local_addr)
        self._udp_transport = transport


@dataclass
class BoundedTcpTransport(TcpSipTransport):
    """aiosipua's TCP transport (Content-Length framing) with the UDP side's size limit on what it parses."""

    max_bytes: int = 8192

    def _dispatch(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > self.max_bytes:
            SIP_DROPPED.inc()
            return
        super()._dispatch(data, addr)


class VoxdeskUAS(SipUAS):
    """aiosipua's UAS with an ACK callback, INFO, a caller's REFER declined and 405 carrying ``Allow``."""

    def __init__(
        self,
        *args: Any,
        on_ack: Callable[[str], None],
        on_info: Callable[[VoxdeskUAS, SipRequest], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        ack = self._handlers["ACK"]

        def acked(request: SipRequest, addr: tuple[str, int]) -> None:
            ack(request, addr)
            on_ack(request.call_id or "")

        self._handlers["ACK"] = acked
        self._handlers["INFO"] = partial(self._in_dialog, partial(on_info, self))
        self._handlers["REFER"] = partial(self._in_dialog, self._decline)

    def _in_dialog(self, handler: Callable[[SipRequest], None], request: SipRequest, addr: tuple[str, int]) -> None:
        del addr
        _call, dialog = self._find_dialog(request.call_id or "")
        if dialog is None:
            self._send_error(request, 481, "Call/Transaction Does Not Exist")
            return
        if not self._validate_in_dialog(dialog, request):
            return
        handler(request)

    def _decline(self, request: SipRequest) -> None:
        # A caller may not steer the agent into dialling out (toll fraud): transfers go one way only.
        self._send_error(request, 603, "Decline")

    def _handle_request(self, request: SipRequest, addr: tuple[str, int]) -> None:
        SIP_REQUESTS.labels(method=request.method.upper()[:16]).inc()
        if request.method.upper() not in self._handlers and request.via and request.call_id:
            self._send_error(request, 405, "Method Not Allowed", extra_headers={"Allow": ALLOWED})
            return
        super()._handle_request(request, addr)

    def reply(self, request: SipRequest, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        """Answer ``request`` outside the call flow (INFO's 200/415)."""
        self._send_error(request, status, reason, extra_headers=headers)


@dataclass
class SipCall:
    """A SIP dialog and what it holds: the trunk line, the RTP port, the call once set up."""

    invite: IncomingCall
    trunk: str
    port: int
    rtp: RtpSession | None = None
    media: SipMedia | None = None
    cancelled: bool = False
    caller_hung_up: bool = False
    released: bool = False
    transferred: bool = False
    digits: list[str] = field(default_factory=list)


@dataclass
class BusyAnswer:
    """A call answered only to hear the busy message: the caller's ACK, and whether the caller left."""

    invite: IncomingCall
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    gone: bool = False


@functools.cache
def wideband_available() -> bool:
    """Whether aiortp has its G.722 codec (the ``G722`` package, a dependency: false only in a broken install)."""
    try:
        get_codec(WIDEBAND)
    except ValueError:
        return False
    return True


def answer_codecs(offer: SdpMessage) -> list[int]:
    """The payload types to answer ``offer`` with: G.722 alone when offered, else PCMU/PCMA.

    G.722 is preferred over G.711 even where the caller lists it after them (RFC 3264 leaves the choice among
    the offered formats to the answerer): its 16 kHz audio is the pipeline's rate, so the caller's speech reaches
    recognition without resampling and with twice the bandwidth.
    Between PCMU and PCMA the caller's order decides (aiosipua's ``negotiate_sdp``).
    """
    audio = offer.audio
    if audio is not None and wideband_available() and any(c.payload_type == WIDEBAND for c in audio.codecs):
        return [WIDEBAND]
    return NARROWBAND


@functools.cache
def busy_pcm() -> bytes:
    """The busy message: 16-bit mono PCM at 8 kHz (``busy.wav``, made by ``make_busy.sh``)."""
    with wave.open(str(BUSY_WAV), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (PHONE_RATE, 1, 2):
            raise ValueError("busy.wav must be 8 kHz mono 16-bit")
        return wav.readframes(wav.getnframes())


async def _play(rtp: RtpSession, pcm: bytes, *, stop: Callable[[], bool]) -> None:
    """Send ``pcm`` (8 kHz, resampled to the codec's rate) as 20 ms RTP packets in real time (until ``stop()``)."""
    audio = AudioFormat.of(rtp)
    if audio.rate != PHONE_RATE:
        pcm = await create_file_resampler().resample(pcm, PHONE_RATE, audio.rate)
    loop = asyncio.get_running_loop()
    start = loop.time()
    ts = random.getrandbits(32)
    for index, offset in enumerate(range(0, len(pcm), audio.packet_bytes)):
        if stop():
            return
        chunk = pcm[offset : offset + audio.packet_bytes].ljust(audio.packet_bytes, b"\0")
        rtp.send_audio_pcm(chunk, (ts + index * audio.packet_ticks) & 0xFFFFFFFF)
        await asyncio.sleep(max(0.0, start + (index + 1) * PTIME_S - loop.time()))


class PortPool:
    """Even RTP ports from a range (RTCP takes the odd one above), each pair checked free before it is handed out.

    Another process on the box (a second Voxdesk, a softphone, a media server) may hold a port of the range; such a
    pair is skipped and tried again later instead of failing the call it was taken for.
    """

    def __init__(self, low: int, high: int, host: str = "127.0.0.1") -> None:
        self._free = list(range(low + (low % 2), high - 1, 2))
        self._host = host

    def take(self) -> int:
        """A free port whose RTCP neighbour is free too (503 when no pair of the range can be bound)."""
        for _ in range(len(self._free)):
            port = self._free.pop(0)
            if _bindable(self._host, port) and _bindable(self._host, port + 1):
                return port
            self._free.append(port)  # held elsewhere now: last in line
        raise ProblemError(503, "No RTP port is free.", type_="rtp-ports-exhausted")

    def give(self, port: int) -> None:
        """Give ``port`` back (used last: a late packet of the old call does not reach the next one)."""
        self._free.append(port)


def _bindable(host: str, port: int) -> bool:
    """Whether a UDP socket can bind ``host:port`` now (it is closed at once: the call's RTP session binds it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _user(message: SipRequest, header: str) -> str | None:
    """The user part of the From/To URI (a number), or ``None``."""
    try:
        address = message.from_addr if header == "from" else message.to_addr
    except (ValueError, AttributeError, IndexError):
        return None
    return (address.uri.user or None) if address is not None else None


def _copy_record_route(invite: IncomingCall) -> None:
    """Make the dialog's responses carry the INVITE's Record-Route (RFC 3261 12.1.1), which aiosipua 0.7.1 omits.

    Without it a proxy in front (kamailio, a carrier's SBC) never sees the caller's ACK and BYE: they follow the
    route set the caller builds from our 2xx.
    """
    send = invite._send_response

    def with_routes(status: int, reason: str, **kwargs: Any) -> Any:
        routes = invite.invite.headers.get("record-route")
        if routes and 100 < status < 300:
            kwargs["extra_headers"] = {**(kwargs.get("extra_headers") or {}), "Record-Route": ", ".join(routes)}
        return send(status, reason, **kwargs)

    setattr(invite, "_send_response", with_routes)  # noqa: B010 - an instance's bound method, wrapped


class SipEndpoint:
    """The SIP UAS of one process, starting calls through ``voice``.

    Args:
        voice: The voice service (admission, call setup).
        settings: The telephony settings.
        production: In production, loopback callers need a trunk like anyone.

    """

    def __init__(self, voice: VoiceService, settings: TelephonySettings, *, production: bool) -> None:
        self._voice = voice
        self._settings = settings
        trunks = [
            Trunk(
                name=trunk.name,
                networks=parse_networks(trunk.addresses),
                username=trunk.username,
                password=trunk.password.get_secret_value() if trunk.password else None,
                max_calls=trunk.max_calls,
                busy_message=trunk.busy_message,
            )
            for trunk in settings.trunks
        ]
        self.trunks = TrunkTable(trunks, loopback_ok=settings.loopback_without_trunk and not production)
        self._ports = PortPool(settings.rtp_port_min, settings.rtp_port_max, settings.sip_host)
        self._calls: dict[str, SipCall] = {}
        self._busy: dict[str, BusyAnswer] = {}
        self._transport: BoundedUdpTransport | None = None
        # Every listening stack (UDP first, then TCP when it is on): a dialog is answered on the one it came in by.
        self._stacks: list[tuple[VoxdeskUAS, SipUAC]] = []
        self._media_host = settings.sip_advertised_host or settings.sip_host

    @property
    def listening(self) -> tuple[str, int] | None:
        """The bound address, once started."""
        return self._transport.local_addr if self._transport is not None else None

    @property
    def calls(self) -> dict[str, SipCall]:
        """Dialogs in progress by Call-ID (read-only use)."""
        return self._calls

    def _stack(self, transport: SipTransport) -> tuple[VoxdeskUAS, SipUAC]:
        """A UAS (and the UAC it sends REFERs with) on ``transport``, wired to this endpoint."""
        settings = self._settings
        advertised = (settings.sip_advertised_host, settings.sip_port) if settings.sip_advertised_host else None
        uac = SipUAC(transport, advertised_addr=advertised)
        uas = VoxdeskUAS(
            transport,
            user_agent="Voxdesk",
            uac=uac,
            advertised_addr=advertised,
            on_ack=self._acked,
            on_info=self._info,
        )
        uas.on_invite = self._invited
        uas.on_bye = self._bye
        uas.on_cancel = self._cancelled
        uas.on_reinvite = self._reinvited
        uas.on_transfer_progress = self._transfer_progress
        uas.on_ack_timeout = lambda call: self._end(call.call_id, "ack_timeout")
        uas.on_session_expired = lambda call: self._end(call.call_id, "session_expired")
        return uas, uac

    async def start(self) -> None:
        """Listen on UDP ``sip_host:sip_port``, and TCP on the same port with ``sip_tcp``.

        A port in use is logged and that transport stays off (the API still serves).
        """
        settings = self._settings
        where = (settings.sip_host, settings.sip_port)
        udp = BoundedUdpTransport(local_addr=where, max_bytes=settings.max_message_bytes)
        tcp = BoundedTcpTransport(local_addr=where, max_bytes=settings.max_message_bytes) if settings.sip_tcp else None
        for transport, event in ((udp, "sip_bind_failed"), (tcp, "sip_tcp_bind_failed")):
            if transport is None:
                continue
            uas, uac = self._stack(transport)
            try:
                await uas.start()
            except OSError as exc:
                log.error(event, host=settings.sip_host, port=settings.sip_port, error=str(exc))
                if transport is udp:
                    return  # no UDP, no SIP: TCP alone would be a half endpoint
                continue
            self._stacks.append((uas, uac))
        self._transport = udp
        SIP_LISTENING.set(1)
        log.info(
            "sip_listening",
            host=settings.sip_host,
            port=settings.sip_port,
            tcp=len(self._stacks) > 1,
            trunks=len(settings.trunks),
        )

    def _forget(self, sip_call_id: str) -> None:
        """Drop a finished dialog from the UAS that held it."""
        for uas, _uac in self._stacks:
            uas._calls.pop(sip_call_id, None)

    async def stop(self) -> None:
        """Hang up what is left and close the socket."""
        for sip_call in list(self._calls.values()):
            if sip_call.media is not None and sip_call.media.call is not None:
                await sip_call.media.call.end("server_shutdown")
        for uas, _uac in self._stacks:
            await uas.stop()
        SIP_LISTENING.set(0)
        self._stacks = []
        self._transport = None

    # --- INVITE to answered call ---

    def _invited(self, invite: IncomingCall) -> None:
        _copy_record_route(invite)
        self._voice.spawn(self._answer(invite), name=f"sip-invite-{invite.call_id[:32]}")

    def _refuse(self, invite: IncomingCall, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        SIP_REFUSED.labels(status=str(status)).inc()
        if headers:
            invite._send_response(status, reason, extra_headers=headers)
            invite.dialog.terminate()
        else:
            invite.reject(status, reason)

    async def _answer(self, invite: IncomingCall) -> None:
        request = invite.invite
        authorization = request.get_header("authorization") or request.get_header("proxy-authorization")
        verdict = self.trunks.admit(invite.source_addr[0], authorization)
        if verdict.trunk is None:
            headers = {"WWW-Authenticate": verdict.challenge} if verdict.challenge else None
            self._refuse(invite, verdict.status, verdict.reason, headers)
            return
        trunk = verdict.trunk
        if invite.sdp_offer is None:
            self._refuse(invite, 488, "Not Acceptable Here")  # no late offer (INVITE without SDP)
            return
        if not self.trunks.acquire(trunk):
            if self.trunks.busy_message(trunk):
                await self._busy_answer(invite, trunk)
            else:
                self._refuse(invite, 486, "Busy Here")
            return
        SIP_TRUNK_CALLS.labels(trunk=trunk).set(self.trunks.active(trunk))
        try:
            port = self._ports.take()
        except ProblemError:
            self._release_trunk(trunk)
            self._refuse(invite, 503, "Service Unavailable")
            return
        sip_call = SipCall(invite=invite, trunk=trunk, port=port)
        self._calls[invite.call_id] = sip_call
        try:
            await self._set_up(sip_call)
        except Exception:
            log.exception("sip_setup_failed", sip_call_id=invite.call_id[:32])
            if not invite._answered and not sip_call.cancelled:
                self._refuse(invite, 500, "Server Internal Error")
            await self._release(sip_call)

    async def _set_up(self, sip_call: SipCall) -> None:
        invite = sip_call.invite
        offer = invite.sdp_offer
        assert offer is not None
        dialled = _user(invite.invite, "to") or ""
        caller = _user(invite.invite, "from")
        persona = self._settings.routes.get(dialled)
        try:
            await self._voice.admit(rate_key=f"trunk:{sip_call.trunk}", channel="sip")
        except ProblemError as problem:
            status, reason = (503, "Service Unavailable") if problem.status == 503 else (486, "Busy Here")
            self._refuse(invite, status, reason, {"Retry-After": "5"} if status == 503 else None)
            await self._release(sip_call)
            return
        try:
            rtp = RtpSession(
                local_ip=self._settings.sip_host,
                rtp_port=sip_call.port,
                offer=offer,
                advertised_ip=self._settings.sip_advertised_host,
                supported_codecs=answer_codecs(offer),
                symmetric_rtp=False,  # trunks and PBXs announce where they listen; latching is for NATed phones
            )
        except (SdpNegotiationError, ValueError):
            self._refuse(invite, 488, "Not Acceptable Here")
            await self._release(sip_call)
            return
        sip_call.rtp = rtp
        await rtp.start()
        if sip_call.cancelled:
            await self._release(sip_call)
            return
        invite.ringing()
        media = SipMedia(rtp, on_close=partial(self._closed, sip_call), on_digit=self._digit)
        sip_call.media = media
        request = CallRequest(
            channel="sip",
            rate_key=f"trunk:{sip_call.trunk}",
            persona=persona or DEFAULT_PERSONA,
            meta={"transport": "sip", "trunk": sip_call.trunk, "codec": rtp.chosen_payload_type},
            caller_number=caller,
        )
        try:
            started = await self._voice.start_call(request, media)
        except ProblemError:
            self._refuse(invite, 503, "Service Unavailable", {"Retry-After": "5"})
            await self._release(sip_call)
            return
        call = started.call
        if sip_call.cancelled:
            started.run.close()
            await call.end("caller_cancelled", outcome="not_connected")
            return
        if isinstance(call.handoff, CallHandoff):
            call.handoff.cold_transfer = partial(self.transfer, media)  # a persona's cold transfer is a REFER
        invite.accept(rtp.sdp_answer)
        log.info("sip_call_answered", call_id=call.call_id, trunk=sip_call.trunk, persona=persona or "default")
        self._voice.spawn(started.run, name=f"call-{call.call_id}")

    async def _busy_answer(self, invite: IncomingCall, trunk: str) -> None:
        """Over the trunk's limit: answer, say that every line is busy (pre-rendered ``busy.wav``), then BYE.

        No call record and no pipeline: only an RTP port for the message's few seconds. At most
        ``MAX_BUSY_ANSWERS`` at once (more are refused 486), so a flood of calls cannot take every RTP port.
        """
        offer = invite.sdp_offer
        if offer is None or len(self._busy) >= MAX_BUSY_ANSWERS:
            self._refuse(invite, 486, "Busy Here")
            return
        try:
            port = self._ports.take()
        except ProblemError:
            self._refuse(invite, 486, "Busy Here")
            return
        playback = BusyAnswer(invite=invite)
        self._busy[invite.call_id] = playback
        rtp: RtpSession | None = None
        try:
            rtp = RtpSession(
                local_ip=self._settings.sip_host,
                rtp_port=port,
                offer=offer,
                advertised_ip=self._settings.sip_advertised_host,
                supported_codecs=answer_codecs(offer),
                symmetric_rtp=False,
            )
            await rtp.start()
            if playback.gone:  # CANCELled while the port opened (aiosipua answered 487)
                return
            invite.accept(rtp.sdp_answer)
            SIP_BUSY_ANSWERED.labels(trunk=trunk).inc()
            log.info("sip_busy_answered", trunk=trunk)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(playback.acked.wait(), timeout=BUSY_ACK_WAIT_S)
            await _play(rtp, busy_pcm(), stop=lambda: playback.gone)
            if not playback.gone:
                invite.hangup()
        except (SdpNegotiationError, ValueError):
            self._refuse(invite, 488, "Not Acceptable Here")
        finally:
            self._busy.pop(invite.call_id, None)
            self._forget(invite.call_id)
            if rtp is not None:
                await rtp.close()
            self._ports.give(port)

    def _acked(self, sip_call_id: str) -> None:
        playback = self._busy.get(sip_call_id)
        if playback is not None:
            playback.acked.set()
            return
        sip_call = self._calls.get(sip_call_id)
        if sip_call is None or sip_call.media is None or sip_call.media.controls is None:
            return
        controls = sip_call.media.controls
        if not controls.media_ready.is_set():
            self._voice.spawn(controls.connected(), name=f"sip-ack-{sip_call_id[:32]}")

    # --- ending ---

    def _bye(self, invite: IncomingCall, request: SipRequest) -> None:
        del request
        if invite.call_id in self._busy:
            self._busy[invite.call_id].gone = True
            return
        sip_call = self._calls.get(invite.call_id)
        if sip_call is None:
            return
        sip_call.caller_hung_up = True
        if sip_call.media is not None and sip_call.media.controls is not None:
            sip_call.media.controls.hang_up("caller_hangup")

    def _cancelled(self, request: SipRequest, addr: tuple[str, int]) -> None:
        del addr
        if (request.call_id or "") in self._busy:
            self._busy[request.call_id or ""].gone = True
            return
        sip_call = self._calls.get(request.call_id or "")
        if sip_call is None:
            return
        # aiosipua has answered 200 to the CANCEL and 487 to the INVITE (unless it was already answered).
        sip_call.cancelled = True
        sip_call.caller_hung_up = True
        if sip_call.media is not None and sip_call.media.controls is not None:
            sip_call.media.controls.hang_up("caller_cancelled")

    def _end(self, sip_call_id: str, reason: str) -> None:
        sip_call = self._calls.get(sip_call_id)
        if sip_call is not None and sip_call.media is not None and sip_call.media.controls is not None:
            sip_call.media.controls.hang_up(reason)

    async def _closed(self, sip_call: SipCall, reason: str) -> None:
        """The call ended (any reason): BYE unless the caller is gone, then free its line and port."""
        if not sip_call.caller_hung_up and sip_call.invite._answered:
            sip_call.invite.hangup()
            log.info("sip_bye_sent", sip_reason=reason, trunk=sip_call.trunk)
        await self._release(sip_call)

    def _release_trunk(self, trunk: str) -> None:
        self.trunks.release(trunk)
        SIP_TRUNK_CALLS.labels(trunk=trunk).set(self.trunks.active(trunk))

    async def _release(self, sip_call: SipCall) -> None:
        if sip_call.released:
            return
        sip_call.released = True
        self._calls.pop(sip_call.invite.call_id, None)
        self._forget(sip_call.invite.call_id)
        if sip_call.rtp is not None:
            await sip_call.rtp.close()
        self._ports.give(sip_call.port)
        self._release_trunk(sip_call.trunk)

    # --- mid-call ---

    def _reinvited(self, invite: IncomingCall) -> None:
        """Hold (sendonly/inactive offer) and resume (sendrecv): answer with the mirrored direction."""
        sip_call = self._calls.get(invite.call_id)
        if sip_call is None or sip_call.rtp is None or sip_call.media is None:
            self._refuse(invite, 481, "Call/Transaction Does Not Exist")
            return
        offer = invite.sdp_offer
        if offer is None:
            invite.accept(sip_call.rtp.sdp_answer)
            return
        try:
            answer, _pt = negotiate_sdp(
                offer=offer,
                local_ip=self._media_host,
                rtp_port=sip_call.port,
                supported_codecs=[sip_call.rtp.chosen_payload_type],
            )
        except SdpNegotiationError:
            invite._send_response(488, "Not Acceptable Here")
            return
        audio = offer.audio
        direction = audio.direction if audio is not None else "sendrecv"
        sip_call.media.held = direction in ("sendonly", "inactive")
        if offer.rtp_address is not None and offer.rtp_address != sip_call.rtp.remote_addr:
            sip_call.rtp.update_remote(offer.rtp_address)
        invite.accept(answer)
        call_id = sip_call.media.call.call_id if sip_call.media.call is not None else None
        log.info("sip_hold" if sip_call.media.held else "sip_resume", call_id=call_id)

    def _info(self, uas: VoxdeskUAS, request: SipRequest) -> None:
        """SIP INFO DTMF (``application/dtmf-relay`` ``Signal=5`` or ``application/dtmf`` ``5``), via ``uas``."""
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type not in _INFO_TYPES:
            uas.reply(request, 415, "Unsupported Media Type", {"Accept": ", ".join(_INFO_TYPES)})
            return
        body = request.text.strip()
        digit = body
        for line in body.splitlines():
            key, _, value = line.partition("=")
            if key.strip().lower() == "signal":
                digit = value.strip()
        digit = digit.upper()
        if digit not in DIGITS:
            uas.reply(request, 400, "Bad DTMF")
            return
        uas.reply(request, 200, "OK")
        sip_call = self._calls.get(request.call_id or "")
        if sip_call is not None and sip_call.media is not None:
            sip_call.media.digit(digit, "info")

    def _digit(self, media: SipMedia, digit: str) -> None:
        call = media.call
        if call is None:
            return
        self._voice.spawn(self._record_digit(media, digit), name=f"sip-dtmf-{call.call_id}")

    async def _record_digit(self, media: SipMedia, digit: str) -> None:
        call, controls = media.call, media.controls
        if call is None or controls is None:
            return

        async def refer(target: str) -> bool:
            return self.transfer(media, target)

        await caller_digit(
            self._voice.state.sessions,
            call,
            controls,
            digit,
            transfer=refer,
            transfer_target=self._settings.transfer_target,
        )

    def transfer(self, media: SipMedia, target: str) -> bool:
        """Cold-transfer the call (REFER, RFC 3515) to a SIP URI or number; the caller's NOTIFY 200 ends it."""
        sip_call = next((c for c in self._calls.values() if c.media is media), None)
        if sip_call is None or sip_call.caller_hung_up:
            return False
        # The REFER goes out on the transport the dialog came in by.
        uac = next((uac for uas, uac in self._stacks if uas.transport is sip_call.invite.transport), None)
        if uac is None:
            return False
        host = self._settings.sip_advertised_host or self._settings.sip_host
        uri = target if target.startswith(("sip:", "sips:", "tel:")) else f"sip:{target}@{host}"
        uac.send_refer(sip_call.invite.dialog, uri, sip_call.invite.source_addr)
        sip_call.transferred = True
        call_id = media.call.call_id if media.call is not None else None
        log.info("sip_refer_sent", call_id=call_id)
        return True

    def _transfer_progress(self, sip_call_id: str, status: int, reason: str) -> None:
        del reason
        sip_call = self._calls.get(sip_call_id)
        if sip_call is None or not sip_call.transferred:
            return
        if 200 <= status < 300:
            if sip_call.media is not None and sip_call.media.call is not None:
                sip_call.media.call.outcome_hint = "handed_off"
            self._end(sip_call_id, "transferred")
        elif status >= 300:
            call = sip_call.media.call if sip_call.media is not None else None
            if call is not None and isinstance(call.handoff, CallHandoff):
                call.handoff.transfer_failed(status)  # a persona's cold transfer goes the warm way
