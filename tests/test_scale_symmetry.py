"""Symmetry helpers of the scaling code against gemmi itself."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from jfjoch.errors import UsageError
from jfjoch.scale.symmetry import (
    Symmetry,
    ambiguity_operators,
    check_lattice,
    reindex_cell,
    setting_operators,
    space_group,
    symmetrise_cell,
)


@pytest.mark.parametrize("sg", [1, 4, 5, 19, 75, 96, 146, 152, 168, 178, 195, 212, "R 3:R", "H 3 2"])
def test_to_asu_matches_gemmi(sg):
    rng = np.random.default_rng(1)
    sym = Symmetry(sg)
    hkl = rng.integers(-15, 16, (2000, 3))
    asu, isym = sym.to_asu(hkl)
    ref = [sym.asu.to_asu(list(h), sym.ops) for h in hkl.tolist()]
    assert np.array_equal(asu, np.array([r[0] for r in ref]))
    assert np.array_equal(isym, np.array([r[1] for r in ref]))
    assert np.array_equal(sym.from_asu(asu, isym), hkl)
    # orbit keys: equal exactly for symmetry/Friedel mates
    k = sym.orbit_keys(hkl)
    ka = sym.orbit_keys(asu)
    assert np.array_equal(k, ka)


def test_absences_and_centric_match_gemmi():
    sym = Symmetry(96)
    hkl = np.array([[0, 0, 1], [0, 0, 4], [1, 0, 0], [2, 0, 0], [1, 2, 3], [1, 1, 0]])
    assert sym.absent(hkl).tolist() == [True, False, True, False, False, False]
    assert sym.centric(hkl).tolist() == [bool(sym.ops.is_reflection_centric(list(h))) for h in hkl.tolist()]
    uc = gemmi.UnitCell(79.3, 79.3, 37.8, 90, 90, 90)
    assert len(sym.possible(uc, 2.0)) == gemmi.count_reflections(uc, sym.sg, 2.0, 0, True)


def test_ambiguity_operators():
    assert len(ambiguity_operators((79, 79, 38, 90, 90, 90), space_group(96))) == 1
    ops = ambiguity_operators((79, 79, 38, 90, 90, 90), space_group(75))
    assert len(ops) == 2 and np.array_equal(ops[0], np.eye(3))
    assert len(ambiguity_operators((60, 60, 90, 90, 90, 120), space_group(143))) == 4


def test_cells_and_lattice_checks():
    R = np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1]])
    assert np.allclose(reindex_cell((50, 60, 70, 90, 100, 90), R), (60, 50, 70, 80, 90, 90))
    ops = setting_operators((60.5, 50, 70, 90, 90, 90), (50, 60, 70, 90, 90, 90))
    assert ops and np.allclose(reindex_cell((60.5, 50, 70, 90, 90, 90), ops[0]), (50, 60.5, 70, 90, 90, 90))
    assert setting_operators((50, 60, 80, 90, 90, 90), (50, 60, 70, 90, 90, 90)) == []
    check_lattice((79.0, 79.3, 38, 90, 90, 90), space_group(96))
    with pytest.raises(UsageError, match="incompatible with the lattice"):
        check_lattice((79, 85, 38, 90, 90, 90), space_group(96))
    with pytest.raises(UsageError, match="incompatible"):
        check_lattice((60, 60, 90, 90, 90, 90), space_group(143))
    assert symmetrise_cell((79.1, 79.3, 38, 90.1, 89.9, 90), space_group(96)) == pytest.approx(
        (79.2, 79.2, 38, 90, 90, 90))
