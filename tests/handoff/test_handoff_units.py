"""The pieces of a handoff without a server: the phrase rule, the hold audio, the gate's taps, the segmenter."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from pipecat.frames.frames import (
    InterruptionFrame,
    LLMContextFrame,
    LLMContextUserTurnFrame,
    OutputAudioRawFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from agent.calls.handoff import HOLD_AUDIO, asks_for_person, caller_turn_trigger, load_hold_pcm
from agent.calls.handoff_media import SpeechSegmenter
from benchmarks.handoff import flite_pcm, speechlike
from control_api.schemas.handoffs import HandoffPolicyModel
from pipelines.processors.handoff_gate import HandoffGate

pytestmark = [pytest.mark.unit]
PHRASES = HandoffPolicyModel().phrases


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I want to talk to a person please", True),
        ("Can I speak to a HUMAN?", True),
        ("get me a real person", True),
        ("connect me to an operator", True),
        ("what are your opening hours", False),
        ("my personal details changed", False),  # whole words only
        ("the humanities department", False),
        ("put me through to an agent", True),
        ("agent please", True),
        ("is there someone I can speak to about my bill", True),
        ("I want someone to help me with this", True),
        ("can i died to a person", True),  # "Can I talk to a person?" as pocketsphinx hears flite slt say it
    ],
)
def test_the_policy_phrases_match_whole_words(text: str, expected: bool) -> None:
    assert asks_for_person(text, PHRASES) is expected


@pytest.mark.parametrize(
    "text",
    [
        "can someone else top up my plan",
        "Does someone have to be home during the installation?",
        "someone rang saying they were from you, is that real",
        "my manager said I could claim this back",
        "do I need someone at home when the engineer comes",
        "how fast can you send someone out",
        "can a human read the chat history",
        "can I pay for another person",
        "my son is the agent",
    ],
)
def test_a_person_word_that_names_a_third_party_is_a_question_not_a_request(text: str) -> None:
    assert not asks_for_person(text, PHRASES)
    assert caller_turn_trigger(text, HandoffPolicyModel())[0] is None


def test_an_operator_phrase_that_is_a_request_by_itself_matches_wherever_it_appears() -> None:
    assert asks_for_person("um can I speak to someone now", ["speak to someone"])
    assert not asks_for_person("can someone else speak for me", ["speak to someone"])
    assert asks_for_person("I'd like to talk to a supervisor", ["supervisor"])


def test_the_shipped_hold_audio_is_a_short_tone_loop_and_not_speech() -> None:
    assert HOLD_AUDIO.stat().st_size <= 200_000
    with wave.open(str(HOLD_AUDIO)) as handle:
        assert (handle.getnchannels(), handle.getsampwidth(), handle.getframerate()) == (1, 2, 16000)
    pcm = np.frombuffer(load_hold_pcm(), dtype=np.int16)
    assert 3.0 <= len(pcm) / 16000 <= 10.0
    frames = pcm[: len(pcm) // 320 * 320].reshape(-1, 320)
    rms = np.sqrt((frames.astype(np.float32) ** 2).mean(axis=1))
    assert (rms > 300).mean() > 0.8 and np.abs(pcm).max() < 16000  # audible, well below full scale
    assert not any(speechlike(f) for f in frames)  # what the tests tell apart from a voice
    voice = np.frombuffer(flite_pcm("Hello, this is Sam from the support team."), dtype=np.int16)
    assert np.mean([speechlike(f) for f in voice[: len(voice) // 320 * 320].reshape(-1, 320)]) > 0.4


async def test_out_of_ai_mode_the_brain_gets_no_turn_and_no_interruption() -> None:
    gate = HandoffGate(call_id="t", sample_rate=16000)
    heard: list[str] = []

    def listener(text: str) -> None:
        heard.append(text)
        if "person" in text:
            gate.mode = "hold"  # what the trigger does, synchronously, before the context frame arrives

    gate.turn_listeners.append(listener)
    context = LLMContext()
    await run_test(
        gate.brain_tap,
        frames_to_send=[
            LLMContextUserTurnFrame(text="what are your hours", timestamp=""),
            LLMContextFrame(context=context),
            LLMContextUserTurnFrame(text="I want a person", timestamp=""),
            LLMContextFrame(context=context),
            InterruptionFrame(),
        ],
        expected_down_frames=[LLMContextUserTurnFrame, LLMContextFrame, LLMContextUserTurnFrame],
    )
    assert heard == ["what are your hours", "I want a person"]


async def test_with_a_human_on_the_call_nothing_synthesised_reaches_the_caller() -> None:
    gate = HandoffGate(call_id="t", sample_rate=16000)
    gate.mode = "human"
    await run_test(
        gate.mixer,
        frames_to_send=[
            TTSAudioRawFrame(audio=bytes(640), sample_rate=16000, num_channels=1),
            OutputAudioRawFrame(audio=bytes(640), sample_rate=16000, num_channels=1),
        ],
        expected_down_frames=[OutputAudioRawFrame],
    )


def test_the_segmenter_cuts_the_human_speech_into_utterances() -> None:
    speech = flite_pcm("Hello, this is Sam from the support team.")
    quiet = bytes(16000 * 2)  # one second of silence
    segmenter = SpeechSegmenter()
    done = []
    for pcm in (quiet, speech, quiet, speech, quiet):
        for i in range(0, len(pcm), 640):  # 20 ms at a time, as the leg delivers it
            done += segmenter.feed(pcm[i : i + 640])
    assert len(done) == 2
    for utterance, _ in done:
        assert 0.8 * len(speech) <= len(utterance) <= len(speech) + 16000 * 2
    noise = (np.random.default_rng(1).normal(0, 50, 16000 * 3)).astype(np.int16).tobytes()
    assert SpeechSegmenter().feed(noise) == []


@pytest.mark.parametrize(
    ("text", "upset"),
    [
        # The caller says how they feel, or judges the situation or the company, in strongly negative words.
        ("I'm really angry, you charged me twice and nobody cares.", True),
        ("This is disgraceful, I want my money back now.", True),  # "disgraceful": VADER knows "disgrace"
        ("You people are hopeless.", True),
        ("Your service is absolutely terrible.", True),
        ("I am fed up with this.", True),
        # A problem told calmly: its words score negative in VADER too, and nobody is handed over for it.
        ("My parcel arrived damaged.", False),
        ("It's broken and the light is red.", False),
        ("My husband died last month and the account is in his name.", False),
        ("I lost my bank card last week.", False),
        ("I'm moving house next week.", False),
        ("No, that's wrong.", False),  # the answer to a confirming question
        ("This is broken.", False),
        ("I am sick and cannot get to the shop.", False),
        # A question is answered, however it is worded.
        ("Why is your service so awful and useless?", False),
    ],
)
def test_an_upset_caller_is_told_from_a_problem_told_calmly(text: str, upset: bool) -> None:
    decision, _ = caller_turn_trigger(text, HandoffPolicyModel())
    assert (decision == ("strongly negative sentiment", "sentiment")) is upset, text
    assert caller_turn_trigger(text, HandoffPolicyModel(sentiment_trigger=False))[0] is None


def test_a_strongly_negative_turn_hands_over_as_the_persona_allows() -> None:
    # The spoken path recognises with the knowledge base's language model, whose vocabulary rarely holds insults:
    # the sentiment rule is checked on text here; the phrase trigger's end-to-end test covers the shared path.
    angry = "This is terrible. I hate this awful useless service."
    decision, score = caller_turn_trigger(angry, HandoffPolicyModel())
    assert decision == ("strongly negative sentiment", "sentiment") and score is not None and score <= -0.6
    assert caller_turn_trigger("How do I reset my password?", HandoffPolicyModel())[0] is None
    assert caller_turn_trigger(angry, HandoffPolicyModel(sentiment_trigger=False))[0] is None
    # The persona's threshold rules VADER's compound ("This is terrible" would hand over by its words alone).
    hate = "I hate this awful useless service."
    assert caller_turn_trigger(hate, HandoffPolicyModel())[0] == ("strongly negative sentiment", "sentiment")
    assert caller_turn_trigger(hate, HandoffPolicyModel(sentiment_threshold=-1.0))[0] is None
    assert caller_turn_trigger(angry, HandoffPolicyModel(enabled=False)) == (None, None)
    # A question is answered whatever its subject's words score (VADER: -0.65 on "broke" and "accident").
    broke = "How much is a replacement router if I broke it by accident?"
    assert caller_turn_trigger(broke, HandoffPolicyModel())[1] is not None
    assert caller_turn_trigger(broke, HandoffPolicyModel(sentiment_threshold=-0.1))[0] is None
    assert caller_turn_trigger("This is awful. I hate this useless service, why", HandoffPolicyModel())[0] is None
    assert caller_turn_trigger("I am so angry, get me a person", HandoffPolicyModel())[0] == (
        "caller asked for a person",
        "phrase",
    )
