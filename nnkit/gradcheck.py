"""Numerical gradient checking with centered differences.

Chapter 0 asks you to write these yourself; from chapter 1 on, the test cells use
this module to check your backward passes.
"""

import numpy as np


def rel_error(a, b, eps: float = 1e-12) -> float:
    """Largest elementwise relative error max |a-b| / max(|a|+|b|, eps)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), eps)))


def numerical_grad(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Gradient of the scalar function ``f`` at ``x`` by centered differences.

    ``x`` is modified in place while probing and restored afterwards, so ``f`` must read
    ``x`` (not a copy made before the call).
    """
    if x.dtype != np.float64:
        raise TypeError("numerical_grad needs a float64 array: float32 loses the digits the check relies on")
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        grad[i] = _centered_difference(f, x, i, h)
    return grad


def _centered_difference(f, x: np.ndarray, i: tuple, h: float) -> float:
    """(f(x + h e_i) - f(x - h e_i)) / 2h, with x[i] restored afterwards."""
    old = x[i]
    try:
        x[i] = old + h
        plus = float(f(x))
        x[i] = old - h
        minus = float(f(x))
    finally:
        x[i] = old
    return (plus - minus) / (2 * h)


def numerical_grad_array(f, x: np.ndarray, dout: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Gradient of ``sum(f(x) * dout)`` with respect to ``x``: the backward pass of an
    array-valued ``f`` given the upstream gradient ``dout``."""
    return numerical_grad(lambda z: np.sum(f(z) * dout), x, h)


def grad_check(f, x: np.ndarray, analytic: np.ndarray, *, n_checks: int | None = None,
               h: float = 1e-5, seed: int = 0) -> float:
    """Relative error between ``analytic`` and the numerical gradient of the scalar ``f``.

    With ``n_checks`` only that many random coordinates are probed, which is how large
    tensors are checked in practice.
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    if n_checks is None:
        return rel_error(analytic, numerical_grad(f, x, h))
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(n_checks):
        i = tuple(int(rng.integers(n)) for n in x.shape)
        num = _centered_difference(f, x, i, h)
        worst = max(worst, rel_error(np.array(analytic[i]), np.array(num)))
    return worst
