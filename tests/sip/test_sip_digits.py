"""A real phone call keys in a number for a tool: sipp asks ``voxdesk serve`` for an order's status by voice, the
offline brain asks for the order number ("... or key it in followed by the hash key") and opens a digit
collection, sipp keys 4 0 9 1 7 # as RFC 4733 telephone-events, and the operator's order API (a local stand-in)
gets exactly one request with that number; the agent speaks its answer. The 0 is a digit of the number here, not a
request for a person.

Its own server (one call): the package's ``sip_server`` lets custom tools reach no loopback API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import start_server, stop_server
from tests.integrations.standins import ORDERS_TOKEN, OrdersApi
from tests.integrations.test_custom_api import config
from tests.pipelines.conftest import whisper_model_dir
from tests.sip.conftest import DIALLED, RtpCapture, SipServer, free_udp_port, question_ulaw, run_sipp

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KEYED = "40917"


@pytest.fixture(scope="module")
def keypad_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipServer]:
    """``voxdesk serve`` with SIP on a free UDP port; custom tools may call loopback APIs (the stand-in)."""
    root = tmp_path_factory.mktemp("sip-digits")
    sip_port = free_udp_port()
    proc, server = start_server(
        root / "data",
        extra_env={
            "VOXDESK_TELEPHONY__SIP_PORT": str(sip_port),
            "VOXDESK_TELEPHONY__ROUTES": json.dumps({DIALLED: "default"}),
            "VOXDESK_VOICE__SILENCE_TIMEOUT_SECS": "30",  # longer than the call (about 26 s)
            "VOXDESK_INTEGRATIONS__ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
            # As tests/sip/conftest.py: Whisper tiny.en hears 8 kHz phone audio (pocketsphinx's model is wideband).
            "VOXDESK_PIPELINE__ASR__BACKEND": "faster-whisper",
            "VOXDESK_PIPELINE__ASR__MODEL_PATH": str(whisper_model_dir()),
        },
    )
    try:
        yield SipServer(voice=server, sip_port=sip_port)
    finally:
        stop_server(proc)


def test_a_caller_keys_in_the_order_number_for_a_custom_tool(
    keypad_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path
) -> None:
    server = keypad_server.voice
    orders = OrdersApi()
    orders.start()
    try:
        admin = {"Authorization": f"Bearer {server.token('admin')}"}
        # The longest timeout a tool may have: the stand-in runs in this test's process on a shared, loaded machine.
        tool = {**config(orders.url), "timeout_secs": 10}
        body = {"name": "orders", "type": "custom_api", "config": tool, "secrets": {"token": ORDERS_TOKEN}}
        r = httpx.post(server.base_url + "/api/integrations", json=body, headers=admin)
        assert r.status_code == 201, r.text
        question_ulaw(tmp_path, "Can you check my order status?")
        run = run_sipp(keypad_server, "keyed_order", tmp_path, rtp_port=rtp_capture.port, stay_ms=9000)
        requests = list(orders.requests)
    finally:
        orders.stop()
    assert run.returncode == 0, run.stdout
    [(call_id,)] = server.query("SELECT id FROM calls WHERE channel = 'sip'")
    turns = server.query("SELECT role, text FROM call_turns WHERE call_id = ? ORDER BY seq", call_id)
    events = server.query("SELECT kind, data FROM call_events WHERE call_id = ? ORDER BY id", call_id)
    log = server.log_path.read_text()
    agent = [text for role, text in turns if role == "agent"]
    assert any(text.endswith("You can say it, or key it in followed by the hash key.") for text in agent), turns
    [sent] = requests  # exactly one request, with the keyed number
    assert sent["body"]["order"] == KEYED, (sent, turns)
    assert any(text.startswith("Your order is shipped: Router X2") for text in agent), (turns, log[-3000:])
    # Every key went to the collection: one event with how many and how it ended, no single digits, no handoff.
    assert ("digits_collected", json.dumps({"count": 5, "ended": "terminator"})) in events, events
    assert [kind for kind, _ in events if kind in ("dtmf", "handoff")] == [], events
    assert server.query("SELECT id FROM handoffs WHERE call_id = ?", call_id) == []
    # The keyed number never reaches a log line.
    assert KEYED not in log
