"""The fixed-point finder on systems whose fixed points are known analytically."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.analysis import find_fixed_points, linearise, speed, unique_points

DT = 0.1


def bistable(h):
    """Euler map of dx/dt = x - x^3, dy/dt = -y: stable (+-1, 0), saddle (0, 0)."""
    return h + DT * jnp.array([h[0] - h[0] ** 3, -h[1]])


def test_bistable_system_points_and_stability():
    starts = jax.random.uniform(jax.random.key(0), (128, 2), minval=-2.0, maxval=2.0)
    result = find_fixed_points(bistable, starts, num_steps=2000, learning_rate=0.05)
    assert bool((result.speed <= result.initial_speed).all())
    points = unique_points(result.points[result.speed < 1e-12], tolerance=1e-2)
    points = points[np.argsort(points[:, 0])]
    np.testing.assert_allclose(points, [[-1, 0], [0, 0], [1, 0]], atol=1e-4)
    lin = linearise(bistable, points)
    # flow Jacobians diag(1 - 3x^2, -1): map eigenvalues 1 + dt * mu
    np.testing.assert_allclose(np.sort(lin.eigenvalues.real, 1), [[0.8, 0.9], [0.9, 1.1], [0.8, 0.9]], atol=1e-4)
    assert lin.unstable_modes.tolist() == [0, 1, 0] and lin.stable.tolist() == [True, False, True]
    np.testing.assert_allclose(lin.jacobians[1], np.diag([1.1, 0.9]), atol=1e-5)


@pytest.mark.parametrize("radius", [0.7, 1.6])
def test_linear_system(radius):
    """F(h) = A h + b has the single fixed point (I - A)^-1 b, stable or not, with J = A."""
    h = 6
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    a = np.asarray(jax.random.normal(k1, (h, h)), np.float64)
    a *= radius / np.abs(np.linalg.eigvals(a)).max()
    b = np.asarray(jax.random.normal(k2, (h,)), np.float64)
    A, B = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    F = lambda x: A @ x + B
    starts = 3.0 * jax.random.normal(k3, (16, h))
    result = find_fixed_points(F, starts, num_steps=3000, learning_rate=0.05)
    expected = np.linalg.solve(np.eye(h) - a, b)
    np.testing.assert_allclose(result.points, np.broadcast_to(expected, (16, h)), atol=2e-3)
    points = unique_points(result.points, tolerance=1e-2)
    assert points.shape == (1, h)
    lin = linearise(F, points)
    want = np.linalg.eigvals(a)
    want = want[np.argsort(-np.abs(want))]
    np.testing.assert_allclose(np.abs(lin.eigenvalues[0]), np.abs(want), rtol=1e-4)
    assert int(lin.unstable_modes[0]) == int((np.abs(want) > 1).sum())
    assert bool(lin.stable[0]) == (radius < 1)


def test_slow_point_without_fixed_point():
    """dx/dt = x^2 + eps has no fixed point; its slowest point is x = 0 with q = (dt eps)^2 / 2."""
    eps = 0.05
    F = lambda h: h + DT * (h ** 2 + eps)
    result = find_fixed_points(F, jnp.linspace(-1.0, 1.0, 9)[:, None], num_steps=3000, learning_rate=0.01)
    np.testing.assert_allclose(result.points[:, 0], 0.0, atol=1e-3)
    np.testing.assert_allclose(result.speed, 0.5 * (DT * eps) ** 2, rtol=1e-3)


def test_speed_and_unique_points():
    assert float(speed(bistable, jnp.array([2.0, 1.0]))) == pytest.approx(0.5 * ((DT * -6.0) ** 2 + DT ** 2))
    pts = np.array([[0.0, 0.0], [0.001, 0.0], [1.0, 0.0], [1.0, 0.005]])
    np.testing.assert_array_equal(unique_points(pts, tolerance=0.01), [[0.0, 0.0], [1.0, 0.0]])
    assert unique_points(np.zeros((0, 3)), tolerance=0.1).shape == (0, 3)


def test_bad_input():
    with pytest.raises(ValueError, match="initial_states"):
        find_fixed_points(bistable, jnp.zeros(2))
    with pytest.raises(ValueError, match="num_steps"):
        find_fixed_points(bistable, jnp.zeros((1, 2)), num_steps=0)
    with pytest.raises(ValueError, match="tolerance"):
        unique_points(np.zeros((2, 2)), tolerance=0.0)
    with pytest.raises(ValueError, match="points"):
        linearise(bistable, jnp.zeros(2))
