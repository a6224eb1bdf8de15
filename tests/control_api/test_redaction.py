"""PII redaction: what is replaced, what is kept, and the check digits that decide."""

from __future__ import annotations

import pytest
from num2words import num2words

from control_api.services.redaction import contact_values, luhn_valid, redact, verhoeff_valid

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
    result = redact("reference 4111 1111 1111 1112")
    assert "1112" not in result.text
    assert result.counts == {"NUMBER": 1}
    # After "card" it is a card with one digit misheard.
    assert redact("card 4111 1111 1111 1112").counts == {"CARD": 1}


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


# Test card numbers of the card networks (Luhn-valid), as a recogniser writes them out.
TEST_CARDS = ("4111111111111111", "5555555555554444", "4012888888881881", "6011111111111117", "378282246310005")
_DIGIT_WORD = {str(d): num2words(d) for d in range(10)}


def _digit_words(digits: str) -> str:
    return " ".join(_DIGIT_WORD[d] for d in digits)


def _groups(digits: str, size: int) -> list[str]:
    return [digits[i : i + size] for i in range(0, len(digits), size)]


def _spellings(card: str) -> list[str]:
    """The ways recognisers have written a card number read out (number words as num2words writes them)."""
    fours = _groups(card, 4)
    return [
        _digit_words(card),  # four one one one ...
        ", ".join(_digit_words(g) for g in fours),  # four one one one, one one one one, ...
        " ".join(num2words(int(g)) for g in fours),  # four thousand, one hundred and eleven ...
        " ".join(num2words(int(g)) for g in _groups(card, 2)),  # forty-one eleven eleven ...
        f"{fours[0]} {_digit_words(''.join(fours[1:]))}",  # 4111 one one one one ...
        f"{_digit_words(fours[0])} {' '.join(fours[1:])}",  # four one one one 1111 1111 1111
        " ".join(num2words(int(g)) if i % 2 else g for i, g in enumerate(fours)),  # 4111 one thousand, ... 1111 ...
    ]


@pytest.mark.parametrize("card", TEST_CARDS)
def test_a_card_read_out_is_a_card_however_it_is_written(card: str) -> None:
    for spelled in _spellings(card):
        if any(g.startswith("0") for g in _groups(card, 2)) and "thousand" in spelled:
            continue  # a group with a leading zero is not said as a number word
        result = redact(f"yes my card number is {spelled} and the expiry is next year")
        assert result.text == "yes my card number is [CARD] and the expiry is next year", spelled
        assert result.counts == {"CARD": 1}, spelled


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The walkthrough's line: the recogniser heard "four" as "for" and the last groups as digits.
        ("for one one one one thousand one hundred eleven 1111 1111", "[CARD]"),
        ("the card is for one one one one thousand one hundred eleven 1111 1111.", "the card is [CARD]."),
        (
            "uh it's four oh one to eight eight eight eight eight eight eight eight one eight eight one",
            "uh it's [CARD]",
        ),
        ("four one one one one one one one one one one one one one one one", "[CARD]"),
        ("card number four one one one one one one one one one one one one one one two", "card number [CARD]"),
        ("visa ending, no the whole thing, 4111 1111 1111 111 two", "visa ending, no the whole thing, [CARD]"),
        ("my number is nine eight seven six five four three two one zero", "my number is [PHONE]"),
        ("call me back on nine eight seven six five, four three two one oh", "call me back on [PHONE]"),
        ("it's double nine eight seven triple six five four three", "it's [PHONE]"),
        ("my mobile is 98765 four three two one oh", "my mobile is [PHONE]"),
        ("the number is five five five, oh one hundred, extension two", "the number is [PHONE], extension two"),
        ("account number one two three four five six seven eight", "account number [PHONE]"),
        ("my account is seven seven oh one two three four five six seven eight nine", "my account is [PHONE]"),
        (
            "the reference is one two three four five six seven eight nine zero one two three four five six seven",
            "the reference is [NUMBER]",
        ),
        ("aadhaar two three four five six seven eight nine zero one two four", "aadhaar [AADHAAR]"),
        ("twenty three forty five sixty seven eighty nine oh one twenty four", "[AADHAAR]"),
        ("it is nine eight seven six five four three two one oh. Thanks", "it is [PHONE]. Thanks"),
        ("you can reach me at nine one nine eight seven six five four three two one oh", "you can reach me at [PHONE]"),
        ("my old number was eight oh oh, five five five, one two three four", "my old number was [PHONE]"),
        ("toll free one eight hundred, five five five, oh one nine nine", "toll free [PHONE]"),
        (
            "the card's a visa, four one one one one one one one one one one one one one one one, "
            "expiry oh three twenty eight",
            "the card's a visa, [CARD], expiry oh three twenty eight",
        ),
        # A card read on into its expiry and security code is hidden whole, as a card.
        ("it's 4111 1111 1111 1111 twelve twenty eight one two three", "it's [CARD]"),
        ("four one one one one one one one one one one one one one one one, one two, two eight", "[CARD]"),
        ("4111-1111-1111-1111-1228", "[CARD]"),
    ],
)
def test_numbers_read_out_are_redacted(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "I have one question about my bill",
        "I have two routers and one of them keeps dropping",
        "I'm on the one hundred megabits plan",
        "it costs twenty nine dollars a month",
        "I pay twenty nine ninety nine for two months",
        "I want to upgrade to plan 500",
        "plan 500 for two people",
        "I called three times in the last two weeks",
        "it's been down for four to five hours since ten thirty",
        "from nine to five on weekdays",
        "the box has four lights, one is red, two are green",
        "my order is number 12345",
        "we moved here in twenty twenty four",
        "about one thousand five hundred rupees",
        "oh, one more thing, the app says error four oh four",
        "one two three, can you hear me?",
        "I have 2 cats and 3 dogs",
        "it was on 2026-11-26 at 10:30",
        "the plan costs 1,499 rupees",
        "double check it for me please",
        "I waited for an hour, then I went to the store",
        "ticket 12345 for two days now",
        "I've been waiting for twenty minutes",
        "the speed test says one fifty down and twenty up",
        "three of my four devices can't connect",
        "the router is the AX 3000 model",
        "I'm calling for my mother, she's seventy eight",
        "can you call me back at four thirty or five",
        "it dropped to two megabits for one hour",
        "order 98765 to one address",
        "between ten thirty to eleven thirty",
    ],
)
def test_ordinary_speech_with_numbers_is_kept(text: str) -> None:
    result = redact(text)
    assert result.text == text
    assert not result.changed


def test_digit_words_and_digits_are_classified_alike() -> None:
    for digits in ("9876543210", "98765432101234567", "234567890124", "4111111111111111"):
        assert redact(_digit_words(digits)).counts == redact(digits).counts


def test_published_contacts_are_kept_only_when_listed() -> None:
    line = "Email support@kestrel.example or call 1800-555-0199; your card 4111 1111 1111 1111 is on file"
    assert redact(line).text == "Email [EMAIL] or call [PHONE]; your card [CARD] is on file"
    keep = contact_values("Support: Support@Kestrel.example, phone 1800 555 0199")
    assert keep == {"support@kestrel.example", "18005550199"}
    assert redact(line, keep=keep).text == (
        "Email support@kestrel.example or call 1800-555-0199; your card [CARD] is on file"
    )
    # A card, Aadhaar or PAN is never kept, even when listed.
    assert redact("4111111111111111", keep={"4111111111111111"}).text == "[CARD]"
