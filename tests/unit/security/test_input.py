"""Strict parsing of typed identifiers (the erasure field, creator ids): digits 0-9 only, and a
message that says what is expected."""

from __future__ import annotations

import pytest

from security.input import (
    MAX_VIEWER_KEY,
    InputError,
    parse_creator_ids,
    parse_viewer_key,
)


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), (" 42 ", 42), (str(MAX_VIEWER_KEY), MAX_VIEWER_KEY)]
)
def test_viewer_keys_are_ascii_digits(text, value):
    assert parse_viewer_key(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "²",  # isdigit() says yes, int() raises
        "１２３",  # full-width digits: int() would take them as 123
        "٣",  # Arabic-Indic digit
        "-5",
        "+5",
        "1_000",
        "1e3",
        "12; DROP TABLE fact_view",
        "",
        "   ",
        "0x1F",
        "\x00",
    ],
)
def test_anything_else_is_refused_with_what_is_expected(text):
    with pytest.raises(InputError, match="digits 0-9"):
        parse_viewer_key(text)


def test_a_too_large_key_says_the_limit():
    with pytest.raises(InputError, match="at most 9,223,372,036,854,775,807"):
        parse_viewer_key(str(MAX_VIEWER_KEY + 1))


def test_the_message_shows_control_characters_visibly():
    with pytest.raises(InputError) as refused:
        parse_viewer_key("1\n2")
    assert "\\n" in str(refused.value) and "\n" not in str(refused.value)


def test_creator_ids_from_text_or_parts():
    assert parse_creator_ids("4, 7,4") == [4, 7]
    assert parse_creator_ids("") == []
    assert parse_creator_ids(" , ") == []
    assert parse_creator_ids(["3", " 1"]) == [1, 3]


@pytest.mark.parametrize("text", ["1; DROP TABLE users", "１", "two", "1.5", "-1"])
def test_bad_creator_ids_are_refused(text):
    with pytest.raises(InputError, match="A creator id must"):
        parse_creator_ids(text)
