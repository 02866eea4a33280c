"""Filter options a person can search: countries by name and by code."""

from __future__ import annotations

from data.queries.dimensions import country_label, dimension_options
from data.queries.filters import Scope


def test_countries_are_named_with_their_codes(demo_store):
    options = dict(dimension_options(demo_store.cursor(), Scope.everything())["country"])
    assert options["US"] == "United States (US)"
    assert options["GB"] == "United Kingdom (GB)"
    # Typing either finds it: a picker searches the label.
    united = [code for code, label in options.items() if "united" in label.lower()]
    assert {"US", "GB"} <= set(united)
    assert all(f"({code})" in label or label == code for code, label in options.items())


def test_an_unknown_code_is_shown_as_it_is():
    assert country_label("ZZ") == "ZZ"
    assert country_label("NZ") == "New Zealand (NZ)"
