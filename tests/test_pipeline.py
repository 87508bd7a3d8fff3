"""Pipeline pieces that the end-to-end tests do not isolate."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from jfjoch.errors import InputError, UsageError
from jfjoch.options import ProcessOptions
from jfjoch.pipeline import _spots_xy, select_images


class _FakeDataset:
    def __init__(self, stored):
        self.stored = stored

    def stored_spots(self, i):
        return self.stored

    def read_image(self, i):
        return np.zeros((4, 4), np.int32)


class _FakeFinder:
    def find(self, image):
        return SimpleNamespace(xy=np.array([[1.0, 3.0], [2.0, 4.0]]))


def test_first_pass_reuses_stored_spots_unless_redo():
    stored = (np.array([10.0, 20.0, 30.0]), np.array([5.0, 6.0, 7.0]), np.ones(3))
    ds = _FakeDataset(stored)
    xy = _spots_xy(ds, 0, _FakeFinder(), ProcessOptions())
    np.testing.assert_array_equal(xy, [[10, 5], [20, 6], [30, 7]])
    xy = _spots_xy(ds, 0, _FakeFinder(), ProcessOptions(redo_rotation_spots=True))
    np.testing.assert_array_equal(xy, [[1, 3], [2, 4]])
    xy = _spots_xy(_FakeDataset(None), 0, _FakeFinder(), ProcessOptions())  # nothing stored: found spots
    np.testing.assert_array_equal(xy, [[1, 3], [2, 4]])


def test_select_images():
    assert select_images(10, ProcessOptions()) == list(range(10))
    assert select_images(10, ProcessOptions(start_image=2, end_image=8, stride=3)) == [2, 5, 8]
    with pytest.raises(UsageError, match="out of range"):
        select_images(10, ProcessOptions(start_image=10))
    with pytest.raises(UsageError, match="out of range"):
        select_images(10, ProcessOptions(end_image=10))
    with pytest.raises(InputError):
        select_images(0, ProcessOptions())
