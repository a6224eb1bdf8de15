"""The title a person reads (knowledge.titles.display_title), and that making it readable leaves search alone."""

from __future__ import annotations

import pytest

from control_api.services.ingestion_pipeline import citation_title, index_title
from knowledge.text_tokens import keyword_tokens
from knowledge.titles import display_title, title_from_filename

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("KESTREL BROADBAND - SERVICE GUIDE", "Kestrel Broadband - Service Guide"),
        ("KESTREL BROADBAND - ACCESSIBILITY AND EXTRA SUPPORT", "Kestrel Broadband - Accessibility and Extra Support"),
        # Known acronyms and words with digits stay; small words are lower case unless they open a part.
        ("YOUR SIM AND 4G FAQ: THE BASICS", "Your SIM and 4G FAQ: The Basics"),
        ("VAT AND ID CHECKS FOR UK AND EU ORDERS", "VAT and ID Checks for UK and EU Orders"),
        ("PDF GUIDE - THE ROUTER", "PDF Guide - The Router"),
        ("GET A ROUTER", "Get a Router"),
        ("CONTACT US", "Contact Us"),  # "US" is a word here, not the country
        ("Q&A FOR NEW CUSTOMERS", "Q&A for New Customers"),
        ("WI-FI SET-UP", "Wi-Fi Set-Up"),
        ("KESTREL'S PRICES (2024)", "Kestrel's Prices (2024)"),
        ("FAQ", "FAQ"),
    ],
)
def test_an_all_caps_heading_is_put_in_title_case(raw: str, title: str) -> None:
    assert display_title(raw, "guide.txt") == title


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("Billing FAQ", "Billing FAQ"),
        ("VAT on EU orders and SIM-only plans", "VAT on EU orders and SIM-only plans"),
        ("Kestrel Hub 3 router setup guide", "Kestrel Hub 3 router setup guide"),
        ("Setting up PPPOE and DNS", "Setting up PPPOE and DNS"),  # acronyms, however long
        ("Our NEWEST plans, with a UK SIM and 4G", "Our Newest plans, with a UK SIM and 4G"),  # shouting > 4 letters
        ("Do NOT unplug the ONT", "Do NOT unplug the ONT"),  # short capitals in a mixed heading are meant
    ],
)
def test_a_mixed_case_heading_keeps_its_acronyms(raw: str, title: str) -> None:
    assert display_title(raw, "guide.md") == title


@pytest.mark.parametrize(
    ("filename", "title"),
    [
        ("pricing_plans.csv", "Pricing plans"),
        ("general-faq.csv", "General FAQ"),
        ("kestrel-tv-faq.xlsx", "Kestrel TV FAQ"),
        ("2024_price-list_v2.csv", "2024 price list v2"),
        ("SIM__only--deals.xlsx", "SIM only deals"),
        ("PRICING_PLANS.CSV", "Pricing Plans"),
        ("Opening Hours.csv", "Opening Hours"),
        ("notes", "Notes"),
    ],
)
def test_a_file_without_a_title_is_named_from_its_file_name(filename: str, title: str) -> None:
    assert display_title(None, filename) == title
    assert display_title("", filename) == title
    assert display_title("   ", filename) == title
    assert display_title(filename, filename) == title  # stored rows keep the file name where there was no title
    assert title_from_filename(filename) == title


def test_nothing_to_make_a_title_from() -> None:
    assert display_title(None) is None
    assert display_title("") is None
    assert display_title(None, "") is None
    assert display_title(None, "___.csv") is None
    assert display_title("  Opening   hours  ") == "Opening hours"  # whitespace as a person writes it


@pytest.mark.parametrize(
    "raw",
    ["KESTREL BROADBAND - SERVICE GUIDE", "YOUR SIM AND 4G FAQ: THE BASICS", "Our NEWEST plans", "Billing FAQ"],
)
def test_the_rule_is_idempotent_and_changes_letter_case_only(raw: str) -> None:
    once = display_title(raw, "x.txt")
    assert once is not None and display_title(once, "x.txt") == once
    assert once.lower() == raw.lower()


@pytest.mark.parametrize(
    ("raw", "filename"),
    [
        ("KESTREL BROADBAND - INSTALLATION APPOINTMENTS", "installation-appointments.txt"),
        ("Billing FAQ", "billing-faq.md"),
        (None, "general-faq.csv"),
        (None, "pricing_plans.csv"),
    ],
)
def test_keyword_search_reads_the_same_name_as_before(raw: str | None, filename: str) -> None:
    """The stored title is the readable one; what keyword search indexes is unchanged, citations read well."""
    before = (raw or filename) if (raw or filename) == filename else f"{raw} ({filename})"
    stored = display_title(raw) or filename  # what ingestion stores: the document's own title, or its file name
    assert keyword_tokens(index_title(stored, filename)) == keyword_tokens(before)
    shown = citation_title(stored, filename)
    assert shown == f"{display_title(raw, filename)} ({filename})"
    assert citation_title(raw or filename, filename) == shown  # rows stored before read the same after a restart


def test_citations_name_the_readable_title_and_the_file() -> None:
    assert citation_title("pricing_plans.csv", "pricing_plans.csv") == "Pricing plans (pricing_plans.csv)"
    assert citation_title("KESTREL - GUIDE", "guide.txt") == "Kestrel - Guide (guide.txt)"
    assert index_title("pricing_plans.csv", "pricing_plans.csv") == "pricing_plans.csv"
    assert citation_title("___.csv", "___.csv") == "___.csv"  # nothing readable to make: the file name
