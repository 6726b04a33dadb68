"""Client movement: paths stay in the cell, legs have their speeds, waypoints are uniform by area, paths do not
depend on the horizon asked, and interpolation is exact on a hand path."""
import numpy as np
import pytest

from channel_models.errors import ValidityRangeError
from channel_models.mobility import RandomDirection, RandomWaypoint, TracePath, interpolate_path, interpolate_paths

R, R0 = 300.0, 35.0


def make(cls, seed=1, pause=1.0, speeds=(1.0, 3.0), start=(100.0, 0.0)):
    return cls(np.random.default_rng(seed), start, radius_m=R, min_distance_m=R0, speed_range_mps=speeds,
               pause_s=pause)


@pytest.mark.parametrize("cls", [RandomWaypoint, RandomDirection])
def test_paths_stay_in_the_annulus_between_and_at_the_knots(cls):
    t, xy = make(cls).knots_until(20_000.0)
    times = np.linspace(0.0, t[-1], 20_000)
    pos, _ = interpolate_path(t, xy, times)
    for points in (xy, pos):
        r = np.hypot(*points.T)
        assert r.min() >= R0 - 1e-9 and r.max() <= R + 1e-9


@pytest.mark.parametrize("cls", [RandomWaypoint, RandomDirection])
def test_moving_legs_have_speeds_in_range_and_pauses_are_still(cls):
    t, xy = make(cls, pause=2.0).knots_until(5_000.0)
    dt = np.diff(t)
    length = np.hypot(*np.diff(xy, axis=0).T)
    moving = length > 0
    speed = length[moving] / dt[moving]
    assert speed.min() >= 1.0 - 1e-9 and speed.max() <= 3.0 + 1e-9
    assert np.allclose(dt[~moving], 2.0)  # every pause lasts pause_s
    mid = (t[:-1] + t[1:]) / 2
    _, v = interpolate_path(t, xy, mid)
    assert np.allclose(v[moving], speed) and np.all(v[~moving] == 0.0)


def test_random_waypoints_are_uniform_by_area():
    rw = RandomWaypoint(np.random.default_rng(5), (100.0, 0.0), radius_m=R, min_distance_m=R0,
                        speed_range_mps=(50.0, 50.0), pause_s=0.0)
    t, xy = rw.knots_until(4000 * 300 / 50.0)
    waypoints = xy[1:4001]
    assert waypoints.shape[0] == 4000
    median_r = np.sqrt((R ** 2 + R0 ** 2) / 2)
    inner = np.mean(np.hypot(*waypoints.T) < median_r)
    assert inner == pytest.approx(0.5, abs=3 * np.sqrt(0.25 / 4000))


@pytest.mark.parametrize("cls", [RandomWaypoint, RandomDirection])
def test_the_knots_do_not_depend_on_the_horizons_asked(cls):
    a = make(cls, seed=9)
    a.knots_until(10.0)
    a.knots_until(37.0)
    ta, xa = a.knots_until(100.0)
    tb, xb = make(cls, seed=9).knots_until(100.0)
    n = min(ta.size, tb.size)
    assert ta[-1] >= 100.0 and np.array_equal(ta[:n], tb[:n]) and np.array_equal(xa[:n], xb[:n])


def test_interpolation_on_a_hand_path():
    t, xy = [0.0, 1.0, 1.0, 3.0, 5.0], [[0, 0], [3, 4], [3, 4], [3, 4], [3, 0]]
    pos, v = interpolate_path(t, xy, [-1.0, 0.5, 1.0, 2.0, 3.0, 4.0, 9.0])
    np.testing.assert_allclose(pos, [[0, 0], [1.5, 2], [3, 4], [3, 4], [3, 4], [3, 2], [3, 0]])
    np.testing.assert_allclose(v, [0, 5, 0, 0, 2, 2, 0])  # right-continuous: at 3 s the leg that starts there


def test_a_trace_path_holds_its_last_position():
    path = TracePath([0.0, 10.0], [[100.0, 0.0], [110.0, 0.0]])
    t, xy = path.knots_until(1000.0)
    pos, v = interpolate_path(t, xy, [5.0, 50.0])
    np.testing.assert_allclose(pos, [[105.0, 0.0], [110.0, 0.0]])
    np.testing.assert_allclose(v, [1.0, 0.0])


@pytest.mark.parametrize("kwargs, name", [
    (dict(speed_range_mps=(0.0, 1.0)), "speed_range_mps[0]"),
    (dict(speed_range_mps=(2.0, 1.0)), "speed_range_mps[1]"),
    (dict(pause_s=-1.0), "pause_s"),
    (dict(min_distance_m=400.0), "min_distance_m"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    args = dict(radius_m=R, min_distance_m=R0, speed_range_mps=(1.0, 2.0), pause_s=0.0)
    args.update(kwargs)
    with pytest.raises(ValidityRangeError) as info:
        RandomWaypoint(np.random.default_rng(0), (100.0, 0.0), **args)
    assert name in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("compiled", [True, False])
def test_many_paths_at_once_equal_one_path_at_a_time_bit_for_bit(compiled):
    """Rule: interpolate_paths (compiled, and its Python twin) gives interpolate_path's positions and speeds
    exactly, for random legs with pauses, a trace with two knots at one time, a one-knot path, and times before,
    at and after the knots."""
    rng = np.random.default_rng(7)
    walker = RandomWaypoint(rng, [100.0, 0.0], radius_m=300.0, min_distance_m=35.0, speed_range_mps=(0.5, 9.0),
                            pause_s=3.0)
    paths = [walker.knots_until(400.0),
             (np.array([5.0, 10.0, 10.0, 30.0]), np.array([[50.0, 0.0], [60.0, 0.0], [70.0, 5.0], [70.0, 5.0]])),
             (np.array([2.0]), np.array([[0.0, 40.0]]))]
    times = np.sort(np.concatenate([rng.uniform(0.0, 450.0, 500), paths[0][0][:20], [0.0, 5.0, 10.0, 30.0]]))
    first = np.cumsum([0] + [t.size for t, _ in paths])
    xy = np.full((times.size, len(paths), 2), np.nan)
    speed = np.full((times.size, len(paths)), np.nan)
    fn = interpolate_paths if compiled else interpolate_paths.py_func
    fn(np.concatenate([t for t, _ in paths]), np.concatenate([k for _, k in paths]), first, times, xy, speed)
    for i, (t, knots) in enumerate(paths):
        want_xy, want_speed = interpolate_path(t, knots, times)
        np.testing.assert_array_equal(xy[:, i], want_xy)
        np.testing.assert_array_equal(speed[:, i], want_speed)
