"""The publication style: one colour per method across figures, distinct line styles, readable units."""
from __future__ import annotations

import pytest

from plots.style import LINE_COLOURS, METHOD_COLOURS, OKABE_ITO, scaled_unit, series_styles


def test_known_methods_keep_their_colour_and_no_two_lines_share_one():
    styles = series_styles(["equal", "bcd", "random", "bcd/fixed-split", "sl", "fl"])
    assert styles["bcd"]["color"] == OKABE_ITO["blue"] and styles["equal"]["color"] == OKABE_ITO["orange"]
    assert styles["bcd/fixed-split"]["color"] == METHOD_COLOURS["fixed-split"]  # a sweep's variant, as its kind
    assert len({s["color"] for s in styles.values()}) == 6
    assert len({(s["marker"], s["linestyle"]) for s in styles.values()}) == 6  # tells lines apart in greyscale
    assert all(s["color"] in LINE_COLOURS for s in styles.values())


def test_two_optimised_methods_do_not_share_blue():
    styles = series_styles(["bcd", "exact"])
    assert styles["bcd"]["color"] == OKABE_ITO["blue"] and styles["exact"]["color"] != OKABE_ITO["blue"]


def test_more_lines_than_colours_still_get_one_each():
    styles = series_styles([f"m{i}" for i in range(11)])
    assert len(styles) == 11 and all(s["color"] in LINE_COLOURS for s in styles.values())


@pytest.mark.parametrize("values, unit, want", [
    ([2e7, 4e7], "Hz", (1e6, "MHz")), ([180e3, 720e3], "Hz", (1e3, "kHz")), ([5e5], "bit", (1e3, "kbit")),
    ([4.29e9], "B", (1e9, "GB")), ([2e11], "FLOP", (1e9, "GFLOP")), ([23.0], "dBm", (1.0, "dBm")),
    ([0.5, 3.0], "s", (1.0, "s")), ([12.0], "Hz", (1.0, "Hz")), ([], "Hz", (1.0, "Hz")),
])
def test_scaled_unit(values, unit, want):
    assert scaled_unit(values, unit) == want
