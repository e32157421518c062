"""The monitor's CSV cells: nothing a spreadsheet would run as a formula (CSV injection)."""

from __future__ import annotations

import pytest

from legacy_sync.monitor.app import _cell


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("http://x")',
        "+1+1",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(A1)",
        " =1+2",  # leading space
        "  \t=1+2",
        "\n=1+2",  # leading newline
        "\r\n@SUM(A1)",
        "\t=1",
        '\uff1dHYPERLINK("http://x")',  # full-width equals sign
        "\uff0b1",
        "\uff0d1",
        "\uff20SUM(A1)",
        "\u3000=1+2",  # ideographic space
        "\u00a0=1+2",  # no-break space
    ],
)
def test_formula_like_cells_are_quoted(value: str) -> None:
    assert _cell(value) == "'" + value


@pytest.mark.parametrize("value", ["Widget", "name is required", "12", "-12.5", "1e3", "", "a=b", "x-y"])
def test_ordinary_values_and_numbers_stay_as_they_are(value: str) -> None:
    assert _cell(value) == value


def test_none_is_an_empty_cell() -> None:
    assert _cell(None) == ""
