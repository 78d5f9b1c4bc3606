"""Energy: trapezoidal integration of instantaneous power over a window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.device.power import energy_figures, energy_per_interval_j, integrate_energy_j, power_at


def test_constant_power():
    points = [(0.0, 5.0), (1.0, 5.0), (2.0, 5.0)]
    assert integrate_energy_j(points, 0.0, 2.0) == pytest.approx(10.0)


def test_linear_ramp_is_exact():
    points = [(0.0, 0.0), (1.0, 10.0)]
    assert integrate_energy_j(points, 0.0, 1.0) == pytest.approx(5.0)
    # A window between two samples (one inference shorter than the sensor refresh).
    assert integrate_energy_j(points, 0.25, 0.75) == pytest.approx(2.5)


def test_trapezoid_between_samples():
    points = [(0.0, 2.0), (1.0, 4.0), (3.0, 4.0), (4.0, 0.0)]
    assert integrate_energy_j(points, 0.0, 4.0) == pytest.approx(3.0 + 8.0 + 2.0)


def test_power_is_held_outside_the_samples():
    points = [(1.0, 4.0), (2.0, 4.0)]
    assert power_at(points, 0.0) == 4.0 and power_at(points, 9.0) == 4.0
    assert integrate_energy_j(points, 0.0, 3.0) == pytest.approx(12.0)


def test_intervals_tiling_a_window_add_up():
    points = [(0.0, 3.0), (0.43, 7.0), (0.86, 5.0), (1.29, 6.0)]
    intervals = [(0.1 * i, 0.1 * (i + 1)) for i in range(12)]
    assert sum(energy_per_interval_j(points, intervals)) == pytest.approx(integrate_energy_j(points, 0.0, 1.2))


def test_energy_per_inference_and_per_action():
    points = [(0.0, 10.0), (2.0, 10.0)]
    figures = energy_figures(points, 0.0, 2.0, inferences=40, actions=80)
    assert figures.energy_j == pytest.approx(20.0)
    assert figures.mean_power_w == pytest.approx(10.0)
    assert figures.per_inference_j == pytest.approx(0.5)
    assert figures.per_action_j == pytest.approx(0.25)
    assert energy_figures(points, 0.0, 2.0, inferences=40).per_action_j is None


def test_invalid_windows_raise():
    with pytest.raises(ValueError):
        integrate_energy_j([(0.0, 1.0)], 2.0, 1.0)
    with pytest.raises(ValueError):
        integrate_energy_j([], 0.0, 1.0)
    with pytest.raises(ValueError):
        energy_figures([(0.0, 1.0)], 0.0, 1.0, inferences=0)


@given(
    watts=st.lists(st.floats(0, 100), min_size=1, max_size=20),
    cuts=st.lists(st.floats(-1, 25), min_size=3, max_size=3),
)
def test_integration_is_additive_over_adjacent_windows(watts, cuts):
    points = [(float(i), w) for i, w in enumerate(watts)]
    a, b, c = sorted(cuts)
    whole = integrate_energy_j(points, a, c)
    assert whole == pytest.approx(integrate_energy_j(points, a, b) + integrate_energy_j(points, b, c), abs=1e-6)
    assert whole >= 0
