"""PII redaction: what is replaced, what is kept, and the check digits that decide."""

from __future__ import annotations

import pytest

from control_api.services.redaction import luhn_valid, redact, verhoeff_valid

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my card is 4111 1111 1111 1111 thanks", "my card is [CARD] thanks"),
        ("4111-1111-1111-1111", "[CARD]"),
        ("amex 378282246310005.", "amex [CARD]."),
        ("write to priya.s+desk@example.co.in please", "write to [EMAIL] please"),
        ("PAN is ABCPE1234F", "PAN is [PAN]"),
        ("pan abcpe1234f", "pan [PAN]"),
        ("aadhaar 2345 6789 0124", "aadhaar [AADHAAR]"),
        ("call +91 98765 43210 or 022-2345-6789", "call [PHONE] or [PHONE]"),
        ("ring +1 (415) 555-0100", "ring [PHONE]"),
        ("my number is nine eight seven six five four three two one zero", "my number is [PHONE]"),
        ("four one one one one one one one one one one one one one one one", "[CARD]"),
    ],
)
def test_pii_is_replaced(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    "text",
    ["order 12345 shipped", "on 2026-11-26 at 10:30", "I have 2 cats and 3 dogs", "the plan costs 1,499 rupees"],
)
def test_ordinary_text_is_kept(text: str) -> None:
    result = redact(text)
    assert result.text == text
    assert not result.changed


def test_a_long_number_failing_luhn_is_still_hidden_whole() -> None:
    result = redact("card 4111 1111 1111 1112")
    assert "1112" not in result.text
    assert result.counts == {"NUMBER": 1}


def test_twelve_digits_failing_verhoeff_are_not_called_aadhaar() -> None:
    assert redact("2345 6789 0123").counts == {"PHONE": 1}


def test_check_digit_algorithms() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert verhoeff_valid("2363")  # the textbook example: 236 with check digit 3
    assert not verhoeff_valid("2364")
    assert verhoeff_valid("234567890124")


def test_counts_per_kind() -> None:
    result = redact("a@b.io, c@d.io and 4111111111111111")
    assert result.counts == {"EMAIL": 2, "CARD": 1}
