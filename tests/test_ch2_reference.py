"""The chapter 2 reference solutions against scikit-learn, numpy.linalg and PyTorch.

Statistics are population statistics (divide by N); scikit-learn's PCA divides by N - 1, so
its whitened output is rescaled by sqrt(N / (N - 1)) before comparing. Principal directions
follow the largest-|entry|-positive sign convention, applied to the oracle independently.
"""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA
from sklearn.preprocessing import StandardScaler

from oracles import data_matrix, sgd_epoch_losses

SHAPES = [(2, 1), (5, 3), (40, 7), (300, 16), (1438, 64)]


@pytest.fixture(scope="module")
def ref(reference):
    return reference("ch2_preprocessing")


def _eig(x):
    """Eigenvalues (descending) and sign-fixed eigenvectors (columns) of the covariance / N."""
    lam, u = np.linalg.eigh(np.atleast_2d(np.cov(x, rowvar=False, bias=True)))
    lam, u = np.clip(lam[::-1], 0.0, None), u[:, ::-1]
    return lam, u * np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])])


@pytest.mark.parametrize("n, d", SHAPES, ids=str)
def test_standardizer_matches_sklearn(ref, n, d):
    x, x_new = data_matrix(n, d, seed=n + d, constant_column=True)
    oracle = StandardScaler().fit(x)
    scaler = ref["Standardizer"]().fit(x)
    for data in (x, x_new):
        got = scaler.transform(data)
        assert got.dtype == np.float64 and got.shape == data.shape
        np.testing.assert_allclose(got, oracle.transform(data), rtol=1e-10, atol=1e-10)
    assert np.all(scaler.transform(x)[:, -1] == 0.0)  # the constant column: exactly 0, no NaN


def test_standardizer_unfitted_and_input_untouched(ref):
    with pytest.raises(RuntimeError):
        ref["Standardizer"]().transform(np.ones((2, 2)))
    x = np.arange(12.0).reshape(4, 3)
    before = x.copy()
    ref["Standardizer"]().fit_transform(x)
    assert np.array_equal(x, before)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (4, 3, 5, 6), (2, 7, 2, 1)], ids=str)
def test_channels_match_torch(ref, shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape) * 3 + 1
    std, mean = torch.std_mean(torch.from_numpy(x), dim=(0, 2, 3), correction=0)
    for layout, data in (("NCHW", x), ("NHWC", x.transpose(0, 2, 3, 1))):
        got_mean, got_std = ref["channel_stats"](data, layout)
        np.testing.assert_allclose(got_mean, mean.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got_std, std.numpy(), rtol=1e-12, atol=1e-12)
    out = ref["normalize_channels"](x.transpose(0, 2, 3, 1), mean.numpy(), std.numpy() + 1.0, "NHWC")
    want = (torch.from_numpy(x) - mean.view(1, -1, 1, 1)) / (std.view(1, -1, 1, 1) + 1.0)
    np.testing.assert_allclose(out, want.numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):
        ref["channel_stats"](x, "CHW")


@pytest.mark.parametrize("n, d", SHAPES[1:], ids=str)
def test_pca_matches_sklearn(ref, n, d):
    x, x_new = data_matrix(n, d, seed=10 * n + d)
    sk = SkPCA().fit(x)
    flip = np.sign(sk.components_[np.arange(d), np.argmax(np.abs(sk.components_), axis=1)])
    pca = ref["PCA"]().fit(x)
    np.testing.assert_allclose(pca.components_, sk.components_ * flip[:, None], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(pca.explained_variance_ratio_, sk.explained_variance_ratio_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(pca.explained_variance_, sk.explained_variance_ * (n - 1) / n, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(pca.transform(x_new), sk.transform(x_new) * flip, rtol=1e-7, atol=1e-8)
    # Round trip with every component is exact; with k of them the error is the left-out variance.
    np.testing.assert_allclose(pca.inverse_transform(pca.transform(x_new)), x_new, rtol=1e-10, atol=1e-9)
    lam, _ = _eig(x)
    k = d // 2
    recon = pca.inverse_transform(pca.transform(x, k=k))
    np.testing.assert_allclose(np.mean(np.sum((x - recon) ** 2, axis=1)), lam[k:].sum(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("method", ["pca", "zca"])
@pytest.mark.parametrize("n, d", SHAPES[1:], ids=str)
def test_whitening_gives_identity_covariance(ref, method, n, d):
    x, _ = data_matrix(n, d, seed=n * d)
    z = ref["Whitener"](method, eps=0.0).fit_transform(x)
    assert z.dtype == np.float64 and z.shape == (n, d)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(z.T @ z / n, np.eye(d), atol=1e-8)


@pytest.mark.parametrize("n, d", SHAPES[1:], ids=str)
def test_whitening_matches_linalg_and_sklearn(ref, n, d):
    x, x_new = data_matrix(n, d, seed=n + 7 * d)
    lam, u = _eig(x)
    mu = x.mean(axis=0)
    eps = float(lam.mean() * 0.05)
    z_pca = ref["Whitener"]("pca", eps=eps).fit(x).transform(x_new)
    z_zca = ref["Whitener"]("zca", eps=eps).fit(x).transform(x_new)
    np.testing.assert_allclose(z_pca, (x_new - mu) @ u / np.sqrt(lam + eps), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(z_zca, (x_new - mu) @ u @ np.diag((lam + eps) ** -0.5) @ u.T, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(z_zca, z_pca @ u.T, rtol=1e-7, atol=1e-9)  # ZCA = PCA whitening rotated back
    sk = SkPCA(whiten=True).fit(x)
    flip = np.sign(sk.components_[np.arange(d), np.argmax(np.abs(sk.components_), axis=1)])
    np.testing.assert_allclose(ref["Whitener"]("pca", eps=0.0).fit(x).transform(x_new),
                               sk.transform(x_new) * flip * np.sqrt(n / (n - 1)), rtol=1e-6, atol=1e-8)


def test_zca_is_closest_whitening(ref):
    x, _ = data_matrix(500, 6, seed=3)
    centred = x - x.mean(axis=0)
    dist = {m: np.mean(np.sum((ref["Whitener"](m, eps=0.0).fit_transform(x) - centred) ** 2, axis=1))
            for m in ("pca", "zca")}
    lam, _ = _eig(x)
    np.testing.assert_allclose(dist["zca"], 6 + lam.sum() - 2 * np.sqrt(lam).sum(), rtol=1e-9)
    assert dist["zca"] < dist["pca"]


def test_whitening_with_eps_on_singular_covariance(ref):
    x, _ = data_matrix(200, 5, seed=4, constant_column=True)
    lam, _ = _eig(x)
    assert lam[-1] < 1e-12
    for method in ("pca", "zca"):
        z = ref["Whitener"](method, eps=1e-2).fit_transform(x)
        assert np.all(np.isfinite(z))
        np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(z.T @ z / len(z)))[::-1], lam / (lam + 1e-2), atol=1e-9)


@pytest.mark.parametrize("n, d", SHAPES, ids=str)
def test_torch_transforms_match_numpy(ref, n, d):
    x, x_new = data_matrix(n, d, seed=n + 3 * d, constant_column=True)
    oracle = StandardScaler().fit(x)
    got_tr, got_te = ref["standardize_torch"](torch.from_numpy(x), torch.from_numpy(x_new))
    assert got_tr.dtype == torch.float64
    np.testing.assert_allclose(got_tr.numpy(), oracle.transform(x), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_te.numpy(), oracle.transform(x_new), rtol=1e-10, atol=1e-10)
    lam, u = _eig(x)
    eps = 1e-3
    w = u @ np.diag((lam + eps) ** -0.5) @ u.T
    got_tr, got_te = ref["zca_whiten_torch"](torch.from_numpy(x), torch.from_numpy(x_new), eps=eps)
    mu = x.mean(axis=0)
    np.testing.assert_allclose(got_tr.numpy(), (x - mu) @ w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got_te.numpy(), (x_new - mu) @ w, rtol=1e-6, atol=1e-7)
    got32, _ = ref["zca_whiten_torch"](torch.from_numpy(x).float(), torch.from_numpy(x_new).float(), eps=eps)
    assert got32.dtype == torch.float32


def test_train_classifier_contract(ref):
    from nnkit.data import load_digits

    x_tr, y_tr, x_te, y_te = load_digits()
    x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    scaler = StandardScaler().fit(x_tr)
    run = ref["train_classifier"](scaler.transform(x_tr), y_tr, scaler.transform(x_te), y_te,
                                  device="cpu", epochs=3, lr=0.5, seed=0)
    again = ref["train_classifier"](torch.from_numpy(scaler.transform(x_tr)), y_tr, scaler.transform(x_te), y_te,
                                    device="cpu", epochs=3, lr=0.5, seed=0)
    assert run["loss_history"] == again["loss_history"]
    assert len(run["loss_history"]) == 3 and all(isinstance(v, float) for v in run["loss_history"])
    assert run["loss_history"][-1] < run["loss_history"][0]
    assert isinstance(run["test_accuracy"], float) and run["test_accuracy"] > 0.9


def test_numpy_transforms_leave_their_inputs_alone_and_return_float64(ref):
    rng = np.random.default_rng(21)
    x = rng.normal(size=(60, 5)) * 3 + 1
    x_int = rng.integers(0, 17, size=(60, 5))
    images = rng.normal(size=(4, 3, 5, 6))
    copies = [a.copy() for a in (x, x_int, images)]
    for data in (x, x_int):
        assert ref["Standardizer"]().fit(data).transform(data).dtype == np.float64
        pca = ref["PCA"]().fit(data)
        assert pca.inverse_transform(pca.transform(data)).dtype == np.float64
        for method in ("pca", "zca"):
            assert ref["Whitener"](method, eps=0.1).fit(data).transform(data).dtype == np.float64
    mean, std = ref["channel_stats"](images, "NCHW")
    assert ref["normalize_channels"](images, mean, std, "NCHW").dtype == np.float64
    for before, after in zip(copies, (x, x_int, images)):
        assert np.array_equal(before, after)
    with pytest.raises(ValueError):
        ref["normalize_channels"](images, mean, std, "CHW")


def test_pca_variances_are_never_negative(ref):
    rng = np.random.default_rng(22)
    x = rng.normal(size=(40, 4)) @ rng.normal(size=(4, 4))
    x = np.column_stack([x, x[:, 0], np.full(40, 2.5)])  # rank 4 of 6
    pca = ref["PCA"]().fit(x)
    assert np.all(pca.explained_variance_ >= 0) and pca.explained_variance_[-1] < 1e-12
    lam, _ = _eig(x)
    np.testing.assert_allclose(pca.explained_variance_, lam, rtol=1e-8, atol=1e-10)


def test_torch_transforms_leave_their_inputs_alone(ref):
    x, x_new = data_matrix(50, 6, seed=23)
    t, t_new = torch.from_numpy(x.copy()), torch.from_numpy(x_new.copy())
    ref["standardize_torch"](t, t_new)
    ref["zca_whiten_torch"](t, t_new, eps=1e-3)
    assert torch.equal(t, torch.from_numpy(x)) and torch.equal(t_new, torch.from_numpy(x_new))


def test_train_classifier_follows_the_stated_procedure(ref):
    """Same model, shuffling, optimizer and loss average as the task states, run here with torch."""
    import torch.nn as nn
    from nnkit.data import load_digits

    x_tr, y_tr, x_te, y_te = load_digits()
    x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    x_tr = StandardScaler().fit_transform(x_tr)
    x, y = torch.as_tensor(x_tr, dtype=torch.float32), torch.as_tensor(y_tr, dtype=torch.int64)
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    want = sgd_epoch_losses(model, optimizer, x, y, epochs=3, batch_size=100, seed=4)
    got = ref["train_classifier"](x_tr, y_tr, x_te, y_te, device="cpu", epochs=3, lr=0.1, seed=4, batch_size=100)
    np.testing.assert_allclose(got["loss_history"], want, rtol=1e-5)
