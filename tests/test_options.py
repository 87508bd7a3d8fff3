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


REFERENCE_OPTIONS = [  # shared/seed/JFJOCH_PROCESS.md: every option of the reference, short and long names
    ("-o", "--output-prefix"), ("-N", "--threads"), ("-s", "--start-image"), ("-e", "--end-image"),
    ("-t", "--stride"), ("-v", "--verbose"), (None, "--spot-sigma"), (None, "--spot-threshold"),
    (None, "--spot-high-resolution"), (None, "--max-spots"), ("-X", "--indexing-algorithm"),
    ("-C", "--unit-cell"), ("-S", "--space-group"), ("-r", "--refine"), ("-R", "--two-pass-rotation"),
    (None, "--single-pass-rotation"), (None, "--redo-rotation-spots"), (None, "--force-rotation-lattice"),
    ("-M", "--scale-merge"), ("-P", "--partiality"), ("-A", "--anomalous"), ("-B", "--refine-bfactor"),
    ("-w", "--wedge"), (None, "--scaling-high-resolution"), (None, "--min-partiality"),
    (None, "--reject-outliers"), (None, "--reject-delta-cchalf"), (None, "--min-image-cc"),
    (None, "--scaling-iterations"), (None, "--scaling-output"), ("-z", "--reference-mtz"), (None, "--bandwidth"),
    (None, "--integration-radius"), (None, "--profile-multiplier"),
]


def test_every_reference_option_is_declared_once_and_on_the_cli():
    from jfjoch.cli.process import command
    from jfjoch.options import option_fields

    decls = {d for f in option_fields(ProcessOptions) for d in f.metadata["decls"]}
    cli = {o for p in command.params for o in getattr(p, "opts", [])}
    for short, long in REFERENCE_OPTIONS:
        assert long in decls and long in cli, long
        if short:
            assert short in decls and short in cli, short
    # one declaration per name
    all_decls = [d for f in option_fields(ProcessOptions) for d in f.metadata["decls"]]
    assert len(all_decls) == len(set(all_decls))


def test_reference_defaults():
    o = ProcessOptions().validate()
    assert (o.refine, o.partiality, o.min_partiality, o.scaling_iterations, o.scaling_output,
            o.profile_multiplier) == ("beam_and_lattice", "fixed", 0.02, 3, "mtz", 6.0)


def test_api_values_are_parsed_like_the_command_line():
    import numpy as np

    o = ProcessOptions(threads=np.int64(2), unit_cell="79.3,79.3,37.8,90,90,90", space_group="P 43 21 2",
                       integration_radius=4, max_spots=np.int32(100)).validate()
    assert o.threads == 2 and type(o.threads) is int and o.space_group == 96
    assert o.unit_cell == (79.3, 79.3, 37.8, 90.0, 90.0, 90.0) and o.integration_radius == (4.0, 6.0, 8.0)
    with pytest.raises(UsageError, match="unknown option"):
        ProcessOptions.from_kwargs(thread=2)
    with pytest.raises(UsageError, match="--threads"):
        ProcessOptions(threads=2.5).validate()
    with pytest.raises(UsageError, match="--verbose"):
        ProcessOptions(verbose="yes").validate()


def test_scale_options_share_the_fields():
    from jfjoch.options import ScaleOptions, ScalingOptions, option_fields

    names = {f.name for f in option_fields(ScaleOptions)}
    assert {f.name for f in option_fields(ScalingOptions)} <= names
    assert {"output_prefix", "threads", "verbose", "space_group"} <= names
    assert "spot_sigma" not in names
