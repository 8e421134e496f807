"""The reference solution of chapter 0 against independent oracles.

Every backward pass and loss gradient is compared with PyTorch autograd in float64 on random
inputs of several shapes; the planted bug of the provided network is shown to be real and
confined to one parameter (the gradient of b1), and no graded task of the notebook calls another
task's function except through a reference network or loss the tests control.
"""

import math
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnkit.gradcheck import rel_error
from nnkit.testing import check_array, check_scalar
from oracles import gradient_errors, normals, random_shape, torch_autograd, torch_autograd_named

ASSIGNMENT = "ch0_building_blocks"
TIGHT = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def ref(reference):
    return reference(ASSIGNMENT)


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 4), (7, 5, 2), (16, 9, 11)])
def test_affine_matches_autograd(ref, shape):
    n, d, m = shape
    x, w, b, dout = normals(np.random.default_rng(sum(shape)), (n, d), (d, m), (m,), (n, m))
    out, cache = ref["affine_forward"](x, w, b)
    dx, dw, db = ref["affine_backward"](dout, cache)
    expected, want = torch_autograd(lambda xt, wt, bt: xt @ wt + bt, x, w, b, dout=dout)
    check_array(out, expected, "out", dtype=np.float64, **TIGHT)
    for name, got, grad in zip(("dx", "dw", "db"), (dx, dw, db), want):
        check_array(got, grad, name, dtype=np.float64, **TIGHT)


REGRESSION = [
    ("mse_loss", lambda p, t: F.mse_loss(p, t)),
    ("mae_loss", lambda p, t: F.l1_loss(p, t)),
    ("rmse_loss", lambda p, t: torch.sqrt(F.mse_loss(p, t))),
    ("huber_loss", lambda p, t: F.huber_loss(p, t, delta=1.0)),
]


@pytest.mark.parametrize("name,oracle", REGRESSION, ids=[r[0] for r in REGRESSION])
@pytest.mark.parametrize("seed", range(4))
def test_regression_losses_match_autograd(ref, name, oracle, seed):
    rng = np.random.default_rng(100 + seed)
    shape = random_shape(rng)
    pred, target = 3 * rng.normal(size=shape), rng.normal(size=shape)
    if seed % 2 and name != "rmse_loss":
        target.flat[::2] = pred.flat[::2]  # exact zero residuals (MAE kink, Huber's quadratic zone)
    expected, (want,) = torch_autograd(lambda p: oracle(p, torch.from_numpy(target)), pred)
    loss, dpred = ref[name](pred, target)
    assert isinstance(loss, float)
    check_scalar(loss, float(expected), f"{name} loss", **TIGHT)
    check_array(dpred, want, f"{name} dpred", dtype=np.float64, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("delta", [0.1, 0.5, 1.0, 2.5])
def test_huber_matches_torch_for_every_delta(ref, delta):
    rng = np.random.default_rng(int(delta * 10))
    pred = rng.normal(size=(5, 7)) * 2
    # residuals exactly at +-delta: both branches and slopes must agree there
    pred[0, :2] = [delta, -delta]
    target = np.zeros_like(pred)
    expected, (want,) = torch_autograd(lambda p: F.huber_loss(p, torch.from_numpy(target), delta=delta), pred)
    loss, dpred = ref["huber_loss"](pred, target, delta=delta)
    check_scalar(loss, float(expected), "huber loss", **TIGHT)
    check_array(dpred, want, "huber dpred", **TIGHT)


@pytest.mark.parametrize("scale", [1e-6, 1e-2, 1.0, 1e4])
def test_rmse_gradient_has_length_one_over_sqrt_s(ref, scale):
    # the claim of the notebook and the page: |d RMSE / d pred| = 1/sqrt(S) for any nonzero residual
    rng = np.random.default_rng(int(-math.log10(scale) * 10) + 100)
    pred, target = scale * rng.normal(size=(4, 5)), scale * rng.normal(size=(4, 5))
    _, (want,) = torch_autograd(lambda p: torch.sqrt(F.mse_loss(p, torch.from_numpy(target))), pred)
    assert float(np.linalg.norm(want)) == pytest.approx(1 / math.sqrt(20), rel=1e-9)
    _, dpred = ref["rmse_loss"](pred, target)
    assert float(np.linalg.norm(dpred)) == pytest.approx(1 / math.sqrt(20), rel=1e-9)


@pytest.mark.parametrize("name", [r[0] for r in REGRESSION])
def test_regression_losses_keep_float32(ref, name):
    rng = np.random.default_rng(7)
    pred, target = (rng.normal(size=(3, 4)).astype(np.float32) for _ in range(2))
    loss, dpred = ref[name](pred, target)
    assert isinstance(loss, float) and dpred.dtype == np.float32


def test_rmse_gradient_is_zero_at_a_perfect_fit(ref):
    pred = np.arange(6.0).reshape(2, 3)
    loss, dpred = ref["rmse_loss"](pred, pred.copy())
    assert loss == 0.0
    check_array(dpred, np.zeros_like(pred), "rmse dpred at a perfect fit")


@pytest.mark.parametrize("scale", [1.0, 10.0, 1e3, 1e6])
@pytest.mark.parametrize("shape", [(1, 2), (4, 3), (9, 10)])
def test_softmax_cross_entropy_matches_autograd(ref, shape, scale):
    n, c = shape
    rng = np.random.default_rng(n * c)
    scores = rng.normal(size=shape) * scale
    y = rng.integers(0, c, size=n)
    expected, (want,) = torch_autograd(lambda s: F.cross_entropy(s, torch.from_numpy(y)), scores)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # a stability bug overflows
        loss, dscores = ref["softmax_cross_entropy"](scores, y)
    assert isinstance(loss, float) and math.isfinite(loss)
    check_scalar(loss, float(expected), "cross-entropy loss", rtol=1e-9, atol=1e-12)
    check_array(dscores, want, "cross-entropy dscores", dtype=np.float64, rtol=1e-9, atol=1e-12)


def test_softmax_cross_entropy_is_finite_for_huge_scores(ref):
    scores = np.array([[1000.0, 1001.0, 1002.0], [1e300, -1e300, 0.0], [-1e4, -1e4, -1e4]])
    y = np.array([2, 1, 0])
    with np.errstate(over="raise", invalid="raise"):
        loss, dscores = ref["softmax_cross_entropy"](scores, y)
    assert math.isfinite(loss), loss
    assert np.all(np.isfinite(dscores)), dscores
    # mean of log(1 + e^-1 + e^-2), 2e300 (the gap to the best class) and log 3
    expected = (math.log(1 + math.exp(-1) + math.exp(-2)) + 2e300 + math.log(3)) / 3
    check_scalar(loss, expected, "loss of huge scores", rtol=1e-12)


def test_numerical_gradient_is_centered_and_restores_x(ref):
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    before = x.copy()
    grad = ref["numerical_gradient"](lambda z: np.sum(z ** 3), x, h=1e-3)
    check_array(grad, 3 * before ** 2 + 1e-6, "centered difference of x^3", rtol=0, atol=1e-9)
    assert np.array_equal(x, before)
    closure = ref["numerical_gradient"](lambda _: np.sum(np.sin(x)), x)
    check_array(closure, np.cos(x), "closure over x", rtol=1e-7, atol=1e-9)


def test_probe_reads_x_through_a_closure_and_sees_it_restored(ref):
    x = np.array([[1.0, 2.0], [1.3, 0.01]])
    grad, after = ref["probe_numerical_gradient"](x, 1e-3)
    check_array(grad, 3 * x ** 2 + 1e-6, "closure gradient", rtol=0, atol=1e-9)
    assert np.array_equal(after, x)

    def naive(f, x, h=1e-5):  # restores by adding and subtracting h: the probe must notice
        grad = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            x[i] += h
            plus = f(x)
            x[i] -= 2 * h
            minus = f(x)
            x[i] += h
            grad[i] = (plus - minus) / (2 * h)
        return grad

    probe = ref["probe_numerical_gradient"]
    with_naive = types.FunctionType(probe.__code__, dict(ref, numerical_gradient=naive))
    assert not np.array_equal(with_naive(x, 1e-3)[1], x)


def test_cross_entropy_helper_matches_torch(ref):
    rng = np.random.default_rng(9)
    scores, y = rng.normal(size=(5, 4)), rng.integers(0, 4, size=5)
    expected, (want,) = torch_autograd(lambda s: F.cross_entropy(s, torch.from_numpy(y)), scores)
    loss, ds = ref["cross_entropy_and_grad"](scores, y)
    assert isinstance(loss, float)
    check_scalar(loss, float(expected), "loss", **TIGHT)
    check_array(ds, want, "dscores", dtype=np.float64, **TIGHT)


@pytest.mark.parametrize("seed", range(3))
def test_numerical_gradient_array_matches_autograd(ref, seed):
    rng = np.random.default_rng(200 + seed)
    n, d, m = (int(v) for v in rng.integers(1, 6, size=3))
    x, a, dout = normals(rng, (n, d), (d, m), (n, m))
    _, (want,) = torch_autograd(lambda xt: torch.tanh(xt @ torch.from_numpy(a)), x, dout=dout)
    grad = ref["numerical_gradient_array"](lambda z: np.tanh(z @ a), x, dout)
    check_array(grad, want, "vjp of tanh(x @ a)", rtol=1e-6, atol=1e-9)


def test_relative_error_matches_nnkit(ref):
    rng = np.random.default_rng(300)
    for _ in range(5):
        shape = random_shape(rng)
        a = rng.normal(size=shape)
        b = a + 1e-6 * rng.normal(size=shape)
        a.flat[0] = b.flat[0] = 0.0
        got = ref["relative_error"](a, b)
        assert isinstance(got, float)
        assert got == pytest.approx(rel_error(a, b), rel=1e-12)


def two_layer_problem(seed, n=6, d=4, h=7, c=3):
    rng = np.random.default_rng(seed)
    params = {"W1": rng.normal(0, 0.7, (d, h)), "b1": rng.normal(0, 0.1, h),
              "W2": rng.normal(0, 0.6, (h, c)), "b2": rng.normal(0, 0.1, c)}
    return params, rng.normal(size=(n, d)), rng.integers(0, c, size=n)


@pytest.mark.parametrize("seed", range(3))
def test_planted_bug_is_real_and_in_one_parameter(ref, seed):
    params, x, y = two_layer_problem(seed)
    buggy = gradient_errors(lambda p: ref["two_layer_loss"](p, x, y), params)
    fixed = gradient_errors(lambda p: ref["two_layer_loss_fixed"](p, x, y), params)
    assert all(err < 1e-7 for err in fixed.values()), fixed
    wrong = [name for name, err in buggy.items() if err > 1e-3]
    assert wrong == ["b1"], buggy
    assert all(buggy[name] < 1e-7 for name in params if name not in wrong), buggy
    # the loss itself is right: only a gradient check exposes the bug
    assert ref["two_layer_loss"](params, x, y)[0] == ref["two_layer_loss_fixed"](params, x, y)[0]
    for name in params:
        assert ref["two_layer_loss"](params, x, y)[1][name].shape == params[name].shape


@pytest.mark.parametrize("shape", [(2, 3, 4, 2), (8, 5, 9, 4), (13, 7, 3, 10)])
def test_two_layer_and_torch_gradients_match_autograd(ref, shape):
    n, d, h, c = shape
    rng = np.random.default_rng(n + d + h + c)
    params = dict(zip(("W1", "b1", "W2", "b2"), normals(rng, (d, h), (h,), (h, c), (c,))))
    x, y = rng.normal(size=(n, d)), rng.integers(0, c, size=n)

    def oracle(t):
        scores = torch.relu(torch.from_numpy(x) @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"]
        return F.cross_entropy(scores, torch.from_numpy(y))

    expected, want = torch_autograd_named(oracle, params)
    loss, grads = ref["two_layer_loss_fixed"](params, x, y)
    from_torch = ref["torch_gradients"](params, x, y)
    check_scalar(loss, float(expected), "loss", rtol=1e-10)
    for name in params:
        check_array(grads[name], want[name], f"numpy {name}", dtype=np.float64, **TIGHT)
        check_array(from_torch[name], want[name], f"torch {name}", dtype=np.float64, **TIGHT)


def test_two_layer_net_is_affine_relu_affine(ref):
    state = ref["linear_init_state"](6, 9, 4, seed=5)
    model = ref["TwoLayerNet"](6, 9, 4)
    model.load_state_dict(state)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    expected = F.linear(torch.relu(F.linear(x, state["fc1.weight"], state["fc1.bias"])),
                        state["fc2.weight"], state["fc2.bias"])
    torch.testing.assert_close(model(x), expected)


def test_train_is_gradient_descent_with_full_batches(ref):
    rng = np.random.default_rng(400)
    n, d, h, c, lr = 12, 5, 6, 3, 0.2
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, c, size=n)
    torch.manual_seed(0)
    model = ref["TwoLayerNet"](d, h, c)
    w = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    expected = []
    for _ in range(4):
        loss = F.cross_entropy(F.linear(torch.relu(F.linear(xt, w[0], w[1])), w[2], w[3]), yt)
        expected.append(loss.item())
        grads = torch.autograd.grad(loss, w)
        with torch.no_grad():
            for p, g in zip(w, grads):
                p -= lr * g
    losses = ref["train"](model, x, y, torch.device("cpu"), epochs=4, lr=lr, batch_size=n, seed=0)
    assert all(isinstance(v, float) for v in losses)
    np.testing.assert_allclose(losses, expected, rtol=1e-6)
    for p, q in zip(model.parameters(), w):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_train_weights_batches_by_size_and_is_reproducible(ref):
    rng = np.random.default_rng(401)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=10)
    torch.manual_seed(1)
    model = ref["TwoLayerNet"](4, 5, 3)
    with torch.no_grad():
        full = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).item()
    frozen = ref["train"](model, x, y, torch.device("cpu"), epochs=2, lr=0.0, batch_size=4, seed=0)
    np.testing.assert_allclose(frozen, [full, full], rtol=1e-6)

    runs = []
    for _ in range(2):
        torch.manual_seed(2)
        model = ref["TwoLayerNet"](4, 5, 3)
        runs.append(ref["train"](model, x, y, torch.device("cpu"), epochs=3, lr=0.1, batch_size=3, seed=7))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("batch_size,seed", [(3, 0), (4, 5), (12, 1)])
def test_train_reference_net_is_seeded_minibatch_sgd(ref, batch_size, seed):
    """The driver the train tests use, with the reference train, against minibatch SGD written
    out with torch.autograd and the order the task prescribes."""
    rng = np.random.default_rng(402 + seed)
    n, d, h, c, lr, epochs = 12, 5, 6, 3, 0.3, 3
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, c, size=n)
    state = ref["linear_init_state"](d, h, c, seed=seed)
    w = [state[k].clone().requires_grad_(True) for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    expected = []
    for _ in range(epochs):
        total = 0.0
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            loss = F.cross_entropy(F.linear(torch.relu(F.linear(xt[idx], w[0], w[1])), w[2], w[3]), yt[idx])
            total += loss.item() * len(idx)
            grads = torch.autograd.grad(loss, w)
            with torch.no_grad():
                for p, g in zip(w, grads):
                    p -= lr * g
        expected.append(total / n)
    losses, scores = ref["train_reference_net"](state, x, y, x, epochs, lr, batch_size, seed)
    np.testing.assert_allclose(losses, expected, rtol=1e-6)
    with torch.no_grad():
        want = F.linear(torch.relu(F.linear(xt, w[0], w[1])), w[2], w[3]).numpy()
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-6)
