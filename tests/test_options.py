"""Option validation: every bad value is a UsageError with a one-line message."""

from __future__ import annotations

import pytest

from jfjoch.errors import UsageError
from jfjoch.options import ProcessOptions, parse_cell, parse_lattice


def test_defaults_match_reference_page():
    o = ProcessOptions().validate()
    assert (o.threads, o.spot_sigma, o.spot_threshold, o.spot_high_resolution, o.max_spots) == (1, 3.0, 10.0, 1.5, 250)
    assert o.output_prefix == "output" and o.indexing_algorithm == "auto"


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"threads": 0}, "--threads"),
        ({"stride": 0}, "--stride"),
        ({"start_image": -1}, "--start-image"),
        ({"start_image": 5, "end_image": 2}, "--end-image"),
        ({"spot_sigma": 0}, "--spot-sigma"),
        ({"spot_threshold": -1}, "--spot-threshold"),
        ({"spot_high_resolution": float("nan")}, "--spot-high-resolution"),
        ({"max_spots": 0}, "--max-spots"),
        ({"indexing_algorithm": "xds"}, "--indexing-algorithm"),
        ({"indexing_algorithm": "ffbidx"}, "unit cell"),
        ({"space_group": 231}, "--space-group"),
        ({"two_pass_rotation": 0}, "--two-pass-rotation"),
        ({"single_pass_rotation": -5.0}, "--single-pass-rotation"),
        ({"two_pass_rotation": 10, "single_pass_rotation": 20.0}, "exclude"),
        ({"output_prefix": ""}, "--output-prefix"),
    ],
)
def test_bad_values(kw, words):
    with pytest.raises(UsageError) as e:
        ProcessOptions(**kw).validate()
    assert words in str(e.value) and "\n" not in str(e.value)


def test_words_are_case_insensitive():
    assert ProcessOptions(indexing_algorithm="FFTW").validate().indexing_algorithm == "fftw"


def test_parse_cell():
    assert parse_cell("79,79,38,90,90,90") == (79, 79, 38, 90, 90, 90)
    for bad in ("79,79,38,90,90", "79,79,-38,90,90,90", "79,79,38,90,90,190", "a,b,c,d,e,f", "10,10,10,150,150,150"):
        with pytest.raises(UsageError):
            parse_cell(bad)


def test_parse_lattice():
    assert len(parse_lattice("79,0,0,0,79,0,0,0,38")) == 9
    with pytest.raises(UsageError):
        parse_lattice("1,0,0,2,0,0,0,0,1")  # coplanar
    with pytest.raises(UsageError):
        parse_lattice("1,2,3")
