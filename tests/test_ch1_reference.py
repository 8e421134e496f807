"""The chapter 1 reference solutions against PyTorch autograd (the independent oracle).

Inputs are float64 and include exact zeros, so the subgradient convention at the kinks
(negative-side slope, as PyTorch) is checked too.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from oracles import normal_with_zeros, normals, sgd_epoch_losses, torch_autograd, torch_autograd_named

SHAPES = [(1,), (7,), (4, 5), (3, 2, 6)]
RTOL, ATOL = 1e-12, 1e-14


@pytest.fixture(scope="module")
def ref(reference):
    return reference("ch1_activations")


CASES = {  # id: (layer, keyword arguments, the same function in PyTorch)
    "sigmoid": ("sigmoid", {}, torch.sigmoid),
    "tanh": ("tanh", {}, torch.tanh),
    "relu": ("relu", {}, F.relu),
    "leaky_relu_default": ("leaky_relu", {}, F.leaky_relu),
    "leaky_relu_0.3": ("leaky_relu", {"alpha": 0.3}, lambda t: F.leaky_relu(t, negative_slope=0.3)),
    "elu_default": ("elu", {}, F.elu),
    "elu_0.4": ("elu", {"alpha": 0.4}, lambda t: F.elu(t, alpha=0.4)),
    "elu_2.5": ("elu", {"alpha": 2.5}, lambda t: F.elu(t, alpha=2.5)),
}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_elementwise_matches_torch(ref, name, shape):
    layer, kwargs, torch_fn = CASES[name]
    x, dout = normal_with_zeros(shape, seed=len(name) * 100 + len(shape))
    want_out, (want_dx,) = torch_autograd(torch_fn, x, dout=dout)
    out, cache = ref[f"{layer}_forward"](x, **kwargs)
    assert out.dtype == np.float64 and out.shape == x.shape
    np.testing.assert_allclose(out, want_out, rtol=RTOL, atol=ATOL)
    dx = ref[f"{layer}_backward"](dout, cache)
    assert dx.dtype == np.float64 and dx.shape == x.shape
    np.testing.assert_allclose(dx, want_dx, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("n, d", [(1, 1), (5, 3), (32, 17)])
def test_prelu_matches_torch(ref, n, d):
    x, dout = normal_with_zeros((n, d), seed=n * d)
    alpha = np.random.default_rng(n + d).uniform(-0.5, 1.5, size=d)
    # the weight is indexed along dim 1, the feature axis of an (N, D) input
    want_out, (want_dx, want_dalpha) = torch_autograd(F.prelu, x, alpha, dout=dout)
    out, cache = ref["prelu_forward"](x, alpha)
    np.testing.assert_allclose(out, want_out, rtol=RTOL, atol=ATOL)
    dx, dalpha = ref["prelu_backward"](dout, cache)
    assert dx.shape == (n, d) and dalpha.shape == (d,)
    np.testing.assert_allclose(dx, want_dx, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dalpha, want_dalpha, rtol=1e-11, atol=ATOL)


@pytest.mark.parametrize("n, d, h", [(1, 1, 1), (4, 3, 5), (25, 10, 8)])
def test_maxout_matches_torch(ref, n, d, h):
    names = ["x", "w1", "b1", "w2", "b2"]
    *values, dout = normals(np.random.default_rng(1000 + n), (n, d), (d, h), (h,), (d, h), (h,), (n, h))
    arrays = dict(zip(names, values))
    want_out, want = torch_autograd_named(
        lambda t: torch.maximum(t["x"] @ t["w1"] + t["b1"], t["x"] @ t["w2"] + t["b2"]), arrays, dout=dout)
    out, cache = ref["maxout_forward"](**arrays)
    np.testing.assert_allclose(out, want_out, rtol=RTOL, atol=ATOL)
    grads = ref["maxout_backward"](dout, cache)
    assert len(grads) == 5
    for name, got in zip(names, grads):
        assert got.shape == arrays[name].shape, name
        np.testing.assert_allclose(got, want[name], rtol=1e-11, atol=ATOL, err_msg=f"d{name}")


def test_maxout_reduces_to_relu(ref):
    # Maxout with a zero second piece is ReLU(x W1 + b1), gradients included.
    x, w1, b1 = normals(np.random.default_rng(7), (6, 4), (4, 3), (3,))
    out, _ = ref["maxout_forward"](x, w1, b1, np.zeros((4, 3)), np.zeros(3))
    np.testing.assert_allclose(out, np.maximum(x @ w1 + b1, 0.0), rtol=RTOL, atol=ATOL)


def test_sigmoid_stable_at_extremes(ref):
    x = np.array([-1000.0, -745.0, -50.0, 0.0, 50.0, 745.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, cache = ref["sigmoid_forward"](x)
        dx = ref["sigmoid_backward"](np.ones_like(x), cache)
    np.testing.assert_allclose(out, torch.sigmoid(torch.tensor(x)).numpy(), rtol=1e-12, atol=1e-300)
    assert np.all(np.isfinite(dx)) and dx[0] == 0.0 and dx[-1] == 0.0


def test_elu_no_overflow(ref):
    with np.errstate(over="raise", invalid="raise"):
        out, _ = ref["elu_forward"](np.array([-1000.0, 0.0, 1000.0]), alpha=1.5)
    np.testing.assert_allclose(out, [-1.5, 0.0, 1000.0])


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "elu"])
def test_float32_kept(ref, name):
    # float32 in, float32 out, in the forward and the backward pass; values as PyTorch in float32.
    layer, kwargs, torch_fn = CASES[name if name in CASES else f"{name}_default"]
    x = np.linspace(-3, 3, 13, dtype=np.float32)
    dout = np.random.default_rng(3).normal(size=13).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    torch_fn(xt).backward(torch.from_numpy(dout))
    out, cache = ref[f"{layer}_forward"](x, **kwargs)
    dx = ref[f"{layer}_backward"](dout, cache)
    assert out.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_allclose(out, torch_fn(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_dead_unit_fraction(ref):
    f = ref["dead_unit_fraction"]
    assert f(np.zeros((4, 5))) == 1.0
    assert f(np.ones((4, 5))) == 0.0
    assert f(np.array([[0.0, 1.0, -0.5, 0.0], [0.0, 0.0, 0.0, 0.0]])) == 0.5
    assert isinstance(f(np.ones((2, 2))), float)


def test_monitor_records_and_removes(ref):
    torch.manual_seed(0)
    lin = nn.Linear(3, 4)
    with torch.no_grad():
        lin.weight[:2] = 0.0
        lin.bias[:2] = -1.0   # units 0 and 1 always dead
        lin.weight[2:] = 0.0
        lin.bias[2:] = 1.0    # units 2 and 3 always alive
    model = nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 2))
    monitor = ref["DeadUnitMonitor"](model)
    with torch.no_grad():
        model(torch.randn(5, 3))
        model(torch.randn(2, 3))
    assert monitor.history() == {"1": [0.5, 0.5]}
    monitor.remove()
    with torch.no_grad():
        model(torch.randn(5, 3))
    assert monitor.history() == {"1": [0.5, 0.5]}
    assert not any(m._forward_hooks for m in model.modules())


def test_monitor_uses_the_given_measure(ref):
    # The monitor applies the measure it is given to each (N, H) NumPy output, in order.
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 5), nn.Tanh())
    batches = [torch.randn(2, 3), torch.randn(6, 3)]
    seen = []
    monitor = ref["DeadUnitMonitor"](model, layer_types=(nn.ReLU, nn.Tanh),
                                     measure=lambda h: seen.append(h) or float(h.sum()))
    with torch.no_grad():
        for b in batches:
            model(b)
    monitor.remove()
    with torch.no_grad():
        want = {"1": [float(model[:2](b).sum()) for b in batches], "3": [float(model(b).sum()) for b in batches]}
    got = monitor.history()
    assert sorted(got) == ["1", "3"]
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6)
    assert all(isinstance(h, np.ndarray) and h.ndim == 2 for h in seen)
    assert [h.shape for h in seen] == [(2, 4), (2, 5), (6, 4), (6, 5)]


def test_train_mlp_matches_a_pytorch_run(ref):
    """train_mlp follows the stated recipe: same losses, accuracy and parameters as a run written here."""
    from nnkit.data import load_mnist1d

    got = ref["train_mlp"]("tanh", lr=0.1, epochs=2, device="cpu", seed=3, batch_size=300)
    x_train, y_train, x_test, y_test = map(torch.from_numpy, load_mnist1d())
    model = ref["make_mlp"]("tanh", 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = sgd_epoch_losses(model, opt, x_train, y_train, epochs=2, batch_size=300, seed=3)
    np.testing.assert_allclose(got["loss_history"], losses, rtol=1e-5)
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert abs(got["test_accuracy"] - acc) < 1e-6
    for name, tensor in model.state_dict().items():
        np.testing.assert_allclose(got["state_dict"][name].numpy(), tensor.numpy(), rtol=1e-4, atol=1e-6)
