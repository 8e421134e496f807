"""Data sets generated locally (no network): MNIST-1D (also at a larger size), scikit-learn's
digits, spirals.

Generated arrays are cached on disk (``$NNKIT_CACHE`` or ``~/.cache/nnkit``) and every
generator is seeded, so each call returns the same data.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    path = Path(os.environ.get("NNKIT_CACHE", Path.home() / ".cache" / "nnkit"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_mnist1d(num_samples: int = 5000, seed: int = 42, dtype=np.float32):
    """MNIST-1D (Greydanus 2020), generated locally by ``mnist1d.data.make_dataset``.

    Returns ``(x_train, y_train, x_test, y_test)``: 40-sample 1-D signals of the ten
    digit templates, labels 0..9, with an 80/20 split.
    """
    from mnist1d.data import get_dataset_args, make_dataset  # imported late: it is slow to import

    args = get_dataset_args(as_dict=True)
    args.update(num_samples=num_samples, seed=seed)
    args.pop("url", None)
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"mnist1d-{key}.npz"
    if path.exists():
        with np.load(path) as saved:
            arrays = {k: saved[k] for k in ("x", "y", "x_test", "y_test")}
    else:
        view = get_dataset_args()  # make_dataset wants the attribute view, not a dict
        for k, v in args.items():
            setattr(view, k, v)
        data = make_dataset(view)
        arrays = {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)  # atomic: parallel notebooks never read half a file
    return (arrays["x"].astype(dtype), arrays["y"].astype(np.int64),
            arrays["x_test"].astype(dtype), arrays["y_test"].astype(np.int64))


def load_digits(test_fraction: float = 0.2, seed: int = 0, dtype=np.float32):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images), as
    ``(x_train, y_train, x_test, y_test)`` with images of shape (N, 8, 8) and values 0..16."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = bunch.images.astype(dtype)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def make_spirals(n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: int = 0,
                 dtype=np.float64):
    """The classic interleaved spirals in 2-D: ``(x, y)`` with x of shape (N, 2)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k in range(n_classes):
        r = np.linspace(0.0, 1.0, n_per_class)
        theta = np.linspace(k * 4.0, (k + 1) * 4.0, n_per_class) + rng.normal(0, noise, n_per_class)
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(n_per_class, k))
    return np.concatenate(xs).astype(dtype), np.concatenate(ys).astype(np.int64)


def _mnist1d_templates():
    """The ten 12-point digit templates of MNIST-1D, whitened, each starting at 0, divided by 6."""
    rows = np.array([
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5]])
    rows = rows - rows.mean(axis=1, keepdims=True)
    rows = rows / rows.std(axis=1, keepdims=True)
    return (rows - rows[:, :1]) / 6.0


def _mnist1d_signals(labels, pad_u, scale_u, shifts, corr_noise, iid_noise, shear_u):
    """MNIST-1D's transform, for many examples at once: pad each template with 36..60 zeros,
    stretch it to 72 points, scale it, roll it, fill its zeros with smoothed noise, add i.i.d.
    noise, shear it, subsample it to 40 points (``mnist1d.transform.transform`` on each row).

    The random draws come in: ``labels`` (n,) ints; ``pad_u``, ``scale_u``, ``shear_u`` (n,)
    uniform in [0, 1); ``shifts`` (n,) ints in [0, 48); ``corr_noise``, ``iid_noise`` (n, 72)
    standard normal. Returns (n, 40) float64 signals, before the final standardization.
    """
    from scipy.ndimage import gaussian_filter1d

    templates = _mnist1d_templates() + 1e-8
    n, tlen, (low, high), width, final = len(labels), 12, (36, 60), 72, 40
    length = tlen + low + (np.asarray(pad_u) * (high - low + 1)).astype(np.int64)
    padded = np.zeros((n, width + 1))
    padded[:, :tlen] = templates[labels]
    rows = np.arange(n)[:, None]
    # stretch: the padded signal on `length` points over [0, 1], read at `width` points
    pos = np.linspace(0.0, 1.0, width)[None, :] * (length - 1)[:, None]
    left = np.minimum(np.floor(pos).astype(np.int64), (length - 2)[:, None])
    frac = pos - left
    x = padded[rows, left] * (1 - frac) + padded[rows, left + 1] * frac
    x *= (1 + 0.4 * (np.asarray(scale_u) - 0.5))[:, None]
    x = x[rows, (np.arange(width)[None, :] - np.asarray(shifts)[:, None]) % width]
    x = np.where(x != 0, x, gaussian_filter1d(0.25 * np.asarray(corr_noise), 2.0, axis=1))
    x = x + 2e-2 * np.asarray(iid_noise)
    x = x - (0.75 * (np.asarray(shear_u) - 0.5))[:, None] * np.linspace(-0.5, 0.5, width)[None, :]
    pos = np.linspace(0.0, 1.0, final) * (width - 1)
    left = np.minimum(np.floor(pos).astype(np.int64), width - 2)
    frac = pos - left
    return x[:, left] * (1 - frac) + x[:, left + 1] * frac


def load_mnist1d_large(n_train: int = 100_000, n_test: int = 10_000, seed: int = 0, dtype=np.float32):
    """MNIST-1D at a larger size: ``(x_train, y_train, x_test, y_test)``, signals of shape (n, 40),
    labels 0..9 in equal numbers (shuffled), standardized like MNIST-1D (one mean and one standard
    deviation over the whole set).

    The examples follow MNIST-1D's recipe (Greydanus 2020) with its default settings, generated
    by a vectorized NumPy version of ``mnist1d``'s transform that gives the same signal for the
    same random draws; the draws come from ``np.random.default_rng(seed)``, so the examples are
    not those of ``load_mnist1d``. A few seconds for 110,000 examples; cached on disk.
    """
    n_total = n_train + n_test
    path = cache_dir() / f"mnist1d-large-v1-{n_train}-{n_test}-{seed}.npz"
    if path.exists():
        with np.load(path) as saved:
            x, y = saved["x"], saved["y"]
    else:
        rng = np.random.default_rng(seed)
        y = rng.permutation(np.arange(n_total) % 10)
        parts = []
        for start in range(0, n_total, 25_000):  # in chunks: a few arrays of 25,000 x 72 at a time
            labels = y[start:start + 25_000]
            m = len(labels)
            parts.append(_mnist1d_signals(labels, rng.random(m), rng.random(m), rng.integers(0, 48, m),
                                          rng.standard_normal((m, 72)), rng.standard_normal((m, 72)),
                                          rng.random(m)))
        x = np.concatenate(parts)
        x = ((x - x.mean()) / x.std()).astype(np.float32)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, x=x, y=y)
        os.replace(tmp, path)  # atomic: parallel notebooks never read half a file
    return (x[:n_train].astype(dtype), y[:n_train].astype(np.int64),
            x[n_train:].astype(dtype), y[n_train:].astype(np.int64))
