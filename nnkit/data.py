"""Data sets generated locally (no network): MNIST-1D, scikit-learn's digits, spirals.

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
