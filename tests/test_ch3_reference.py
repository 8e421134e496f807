"""The chapter 3 reference solutions against torch.nn.init (the independent oracle), and the
depth and training effects the exercise asserts.

Random initializers cannot be compared value by value with PyTorch (the generators differ), so
their samples are compared by statistics: standard deviation within 10 standard errors (about
10 / sqrt(2 N) relative for N draws), kurtosis (3 for normal, 1.8 for uniform), and for uniform
draws the largest |w| against the bound.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from oracles import kurtosis, pooled, sgd_epoch_losses

LN10 = math.log(10)


@pytest.fixture(scope="module")
def ref(reference):
    return reference("ch3_initialization")


SHAPES = [(3, 5), (128, 40), (7, 3, 5), (16, 3, 5, 5), (6, 2, 3, 1), (4, 2, 3, 3, 3), (1, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fans_match_torch(ref, shape):
    got = ref["fan_in_fan_out"](shape)
    assert tuple(got) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert all(type(v) is int for v in got)


def test_fans_of_a_grouped_convolution_follow_torch(ref):
    # PyTorch reads the shape (out, in/groups, k, k) only: its fan_out is out * k * k, groups times the
    # number of outputs one input really feeds. The exercise follows PyTorch's convention.
    conv = nn.Conv2d(16, 32, 3, groups=4)
    assert ref["fan_in_fan_out"](tuple(conv.weight.shape)) == (36, 288)
    assert torch.nn.init._calculate_fan_in_and_fan_out(conv.weight) == (36, 288)


def test_fans_need_two_dimensions(ref):
    with pytest.raises(ValueError):
        ref["fan_in_fan_out"]((5,))


@pytest.mark.parametrize("name, param", [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                                         ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0.0),
                                         ("leaky_relu", 1.7), ("tanh", 0.5)])
def test_gain_matches_torch(ref, name, param):
    got = ref["calculate_gain"](name, param)
    assert isinstance(got, float)
    assert got == pytest.approx(torch.nn.init.calculate_gain(name, param), rel=1e-12)


def test_gain_rejects_unknown_nonlinearity(ref):
    with pytest.raises(ValueError):
        ref["calculate_gain"]("softmax")


def test_simple_schemes(ref):
    init = ref["init_weights"]
    rng = np.random.default_rng(0)
    w = init((3, 4), "zeros", rng)
    assert w.dtype == np.float64 and w.shape == (3, 4) and not w.any()
    w = init((2, 3), "constant", rng, value=-0.5)
    assert w.dtype == np.float64 and np.all(w == -0.5)
    w = init((300, 300), "normal", rng, std=0.05)
    assert w.dtype == np.float64 and abs(w.std() / 0.05 - 1) < 10 / math.sqrt(2 * w.size)
    a = init((5, 6), "kaiming_uniform", np.random.default_rng(3))
    b = init((5, 6), "kaiming_uniform", np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        init((3, 4), "orthogonal", rng)
    with pytest.raises(ValueError):
        init((3, 4), "kaiming_normal", rng, mode="fan_avg")


INIT_CASES = [  # (shape, scheme, keyword arguments for ours, torch initializer and its keyword arguments)
    ((400, 500), "xavier_normal", {}, nn.init.xavier_normal_, {}),
    ((400, 500), "xavier_uniform", {"gain": 5 / 3}, nn.init.xavier_uniform_, {"gain": 5 / 3}),
    ((64, 32, 5, 5), "xavier_uniform", {}, nn.init.xavier_uniform_, {}),
    ((30, 7, 3), "xavier_normal", {"gain": 0.7}, nn.init.xavier_normal_, {"gain": 0.7}),
    ((300, 600), "kaiming_normal", {"gain": math.sqrt(2)}, nn.init.kaiming_normal_, {"nonlinearity": "relu"}),
    ((300, 600), "kaiming_uniform", {"gain": math.sqrt(2), "mode": "fan_out"}, nn.init.kaiming_uniform_,
     {"nonlinearity": "relu", "mode": "fan_out"}),
    ((96, 48, 3, 3), "kaiming_uniform", {"gain": 5 / 3}, nn.init.kaiming_uniform_, {"nonlinearity": "tanh"}),
    ((10, 20, 2, 2), "kaiming_normal", {"gain": math.sqrt(2 / 1.04), "mode": "fan_out"}, nn.init.kaiming_normal_,
     {"a": 0.2, "nonlinearity": "leaky_relu", "mode": "fan_out"}),
    ((50, 8), "kaiming_normal", {}, nn.init.kaiming_normal_, {"nonlinearity": "linear"}),
]


@pytest.mark.parametrize("shape, scheme, ours_kw, torch_init, torch_kw", INIT_CASES,
                         ids=[f"{c[1]}-{c[0]}" for c in INIT_CASES])
def test_init_statistics_match_torch(ref, shape, scheme, ours_kw, torch_init, torch_kw):
    init = ref["init_weights"]
    single = init(shape, scheme, np.random.default_rng(0), **ours_kw)
    assert single.shape == shape and single.dtype == np.float64
    size = int(np.prod(shape))
    ours = pooled(lambda i: init(shape, scheme, np.random.default_rng([7, i]), **ours_kw), size)
    theirs = pooled(lambda i: torch_init(torch.empty(shape, dtype=torch.float64),
                                         generator=torch.Generator().manual_seed(i), **torch_kw).numpy(), size)
    n = ours.size
    assert abs(ours.std() / theirs.std() - 1) < 10 / math.sqrt(n)
    assert abs(ours.mean()) < 10 * theirs.std() / math.sqrt(n)
    assert abs(kurtosis(ours) - kurtosis(theirs)) < 10 * math.sqrt(48 / n)
    if scheme.endswith("uniform"):
        assert abs(np.abs(ours).max() / np.abs(theirs).max() - 1) < 40 / n


def test_forward_and_backward_match_autograd(ref):
    rng = np.random.default_rng(5)
    widths = [7, 12, 5, 9]
    x = rng.normal(size=(11, widths[0]))
    weights = [rng.normal(size=(b, a)) * 1.4 / math.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
    dout = rng.normal(size=(11, widths[-1]))
    for activation, f in {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda t: t}.items():
        hs = [torch.tensor(x, requires_grad=True)]
        for w in weights:
            out = f(hs[-1] @ torch.tensor(w).T)
            out.retain_grad()
            hs.append(out)
        (hs[-1] * torch.tensor(dout)).sum().backward()
        got = ref["deep_forward"](x, weights, activation)
        for mine, theirs in zip(got, hs[1:]):
            np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
        means, stds = ref["forward_stats"](x, weights, activation)
        np.testing.assert_allclose(means, [h.mean().item() for h in hs[1:]], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(stds, [h.std(correction=0).item() for h in hs[1:]], rtol=1e-10)
        grads = ref["backward_stats"](x, weights, activation, dout)
        np.testing.assert_allclose(grads, [h.grad.std(correction=0).item() for h in hs[:-1]], rtol=1e-10)


@pytest.fixture(scope="module")
def deep(ref):
    """Stats of the 12-layer, 384-unit networks the exercise's tests use (seed 0 and 1)."""
    width, depth = 384, 12
    x, dout = ref["probe_batch"](width, seed=0)

    def run(scheme, activation, **kwargs):
        weights = ref["deep_weights"](width, depth, scheme, seed=1, **kwargs)
        _, stds = ref["forward_stats"](x, weights, activation)
        return stds, ref["backward_stats"](x, weights, activation, dout), weights

    return x, run


def test_he_relu_keeps_the_scale_and_xavier_relu_shrinks_it(ref, deep):
    x, run = deep
    stds, grads, _ = run("kaiming_normal", "relu", gain=math.sqrt(2))
    assert 0.5 <= stds[-1] / stds[0] <= 2 and 0.5 <= grads[0] / grads[-1] <= 2
    stds, _, _ = run("xavier_normal", "relu")
    # sqrt(2) lost per ReLU layer: 2 ** -5.5 = 0.022 over 11 layers.
    assert 0.005 < stds[-1] / stds[0] < 0.1


def test_small_init_collapses_and_large_init_saturates(ref, deep):
    x, run = deep
    for activation in ["tanh", "relu"]:
        stds, grads, _ = run("normal", activation, std=0.01)
        assert stds[9] < 1e-6 * x.std() and grads[0] < 1e-6 * grads[-1]
    _, _, weights = run("normal", "tanh", std=1.0)
    hs = ref["deep_forward"](x, weights, "tanh")
    assert min(np.mean(np.abs(h) > 0.99) for h in hs) > 0.75


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(16, 64, kernel_size=5), nn.ReLU(), nn.Flatten(),
                         nn.Sequential(nn.Linear(64 * 36, 256), nn.ReLU()), nn.Linear(256, 10))


@pytest.mark.parametrize("scheme, activation", [("small", "relu"), ("large", "tanh"), ("xavier", "relu"),
                                                ("kaiming", "relu"), ("kaiming", "tanh"), ("zeros", "relu"),
                                                ("default", "relu")])
def test_apply_init(ref, scheme, activation):
    model = _model()
    assert ref["apply_init"](model, scheme, activation) is model
    for layer in [model[0], model[3][0], model[4]]:
        w = layer.weight.detach().double().numpy()
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(layer.weight)
        want = {"small": 0.01, "large": 1.0, "xavier": math.sqrt(2 / (fan_in + fan_out)),
                "kaiming": torch.nn.init.calculate_gain(activation) / math.sqrt(fan_in), "zeros": 0.0,
                "default": 1 / math.sqrt(3 * fan_in)}[scheme]
        if want == 0.0:
            assert not w.any()
        else:
            assert abs(w.std() / want - 1) < 10 / math.sqrt(2 * w.size)
        if scheme == "default":
            assert np.abs(w).max() <= 1 / math.sqrt(fan_in) and layer.bias.detach().abs().max() > 0
        else:
            assert not layer.bias.detach().any()
    with pytest.raises(ValueError):
        ref["apply_init"](_model(), "orthogonal")


def test_deep_mlp_learns_with_he_and_stalls_with_small_or_zero_init(ref):
    train = ref["train_deep_mlp"]
    good = train("kaiming", "relu", depth=10, device="cpu", epochs=5, seed=0)
    assert set(good) == {"loss_history", "test_accuracy", "model"}
    h = good["loss_history"]
    assert len(h) == 5 and all(isinstance(v, float) for v in h)
    assert 1.8 < h[0] < 2.6 and h[-1] < h[0] - 0.5 and good["test_accuracy"] > 0.25
    for activation in ["relu", "tanh"]:
        bad = train("small", activation, depth=10, device="cpu", epochs=3, seed=0)["loss_history"]
        assert all(abs(v - LN10) < 0.01 for v in bad), (activation, bad)
    zero = train("zeros", "tanh", depth=3, device="cpu", epochs=2, seed=0)
    assert all(abs(v - LN10) < 0.01 for v in zero["loss_history"])
    for index in (0, 2, 4):
        assert not zero["model"][index].weight.detach().any()


def test_train_deep_mlp_follows_the_stated_procedure(ref):
    """The run of the task rebuilt with torch: make_deep_mlp's seed, He init, SGD momentum 0.9, one generator."""
    from nnkit.data import load_mnist1d

    x, y, _, _ = load_mnist1d()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(5)
    layers, fan_in = [], 40
    for _ in range(3):
        layers += [nn.Linear(fan_in, 64), nn.ReLU()]
        fan_in = 64
    model = nn.Sequential(*layers, nn.Linear(fan_in, 10))
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    want = sgd_epoch_losses(model, optimizer, x, y, epochs=2, batch_size=128, seed=5)
    got = ref["train_deep_mlp"]("kaiming", "relu", depth=3, device="cpu", epochs=2, seed=5, batch_size=128)
    np.testing.assert_allclose(got["loss_history"], want, rtol=1e-5)


def test_unknown_names_raise(ref):
    for call in (lambda: ref["fan_in_fan_out"](()), lambda: ref["calculate_gain"]("gelu"),
                 lambda: ref["init_weights"]((3, 4), "xavier", np.random.default_rng(0))):
        with pytest.raises(ValueError):
            call()
