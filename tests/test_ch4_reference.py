"""The chapter 4 reference solutions against PyTorch (torch.nn.functional's normalizations, autograd,
nn.BatchNorm1d/2d's running statistics, torch.nn.utils.fusion), and the training effects the exercise asserts.

Inputs include N = 2, a zero-variance feature and large offsets (x = 5 randn + 12); upstream gradients are
random (with dout all ones a batch norm's dx is exactly zero and hides mistakes).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_linear_bn_eval

from oracles import sgd_epoch_losses, torch_autograd


@pytest.fixture(scope="module")
def ref(reference):
    return reference("ch4_batchnorm")


def offset_input(rng, shape, constant_axis=1):
    x = 5.0 * rng.normal(size=shape) + 12.0
    index = [slice(None)] * len(shape)
    index[constant_axis] = 0
    x[tuple(index)] = 3.25  # zero variance along the normalized axes
    return x


def fresh_state(rng, d):
    return {"running_mean": rng.normal(size=d), "running_var": rng.uniform(0.5, 2.0, size=d)}


@pytest.mark.parametrize("n, d", [(2, 3), (5, 4), (32, 7), (3, 1)])
def test_batchnorm_train_steps_match_batchnorm1d(ref, n, d):
    rng = np.random.default_rng(100 + n * d)
    gamma, beta = rng.normal(size=d), rng.normal(size=d)
    bn = nn.BatchNorm1d(d, momentum=0.1, eps=1e-5).double()
    state = fresh_state(rng, d)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
        bn.running_mean.copy_(torch.from_numpy(state["running_mean"]))
        bn.running_var.copy_(torch.from_numpy(state["running_var"]))
    for step in range(4):
        x = offset_input(rng, (n, d))
        before = {k: v.copy() for k, v in state.items()}
        x_before = x.copy()
        out, _, new_state = ref["batchnorm_forward"](x, gamma, beta, state, True)
        want = bn.train()(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(out, want, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(new_state["running_mean"], bn.running_mean.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(new_state["running_var"], bn.running_var.numpy(), rtol=1e-12, atol=1e-14)
        for k in state:
            np.testing.assert_array_equal(state[k], before[k])
        np.testing.assert_array_equal(x, x_before)
        state = new_state
    x = offset_input(rng, (n, d))
    out, _, eval_state = ref["batchnorm_forward"](x, gamma, beta, state, False)
    np.testing.assert_allclose(out, bn.eval()(torch.from_numpy(x)).detach().numpy(), rtol=1e-9, atol=1e-10)
    for k in state:
        np.testing.assert_array_equal(eval_state[k], state[k])


def test_eval_mode_rows_are_independent(ref):
    rng = np.random.default_rng(7)
    x, state = offset_input(rng, (6, 4)), fresh_state(rng, 4)
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    whole = ref["batchnorm_forward"](x, gamma, beta, state, False)[0]
    for i in range(6):
        np.testing.assert_allclose(ref["batchnorm_forward"](x[i:i + 1], gamma, beta, state, False)[0], whole[i:i + 1])


@pytest.mark.parametrize("backward", ["batchnorm_backward", "batchnorm_backward_alt"])
@pytest.mark.parametrize("n, d", [(2, 3), (7, 5), (16, 1)])
def test_batchnorm_backward_matches_autograd(ref, backward, n, d):
    rng = np.random.default_rng(200 + n * d)
    x, gamma, beta = offset_input(rng, (n, d)), rng.normal(size=d), rng.normal(size=d)
    dout = rng.normal(size=(n, d))
    _, cache, _ = ref["batchnorm_forward"](x, gamma, beta, fresh_state(rng, d), True)
    _, want = torch_autograd(lambda a, g, b: F.batch_norm(a, None, None, g, b, training=True, eps=1e-5),
                             x, gamma, beta, dout=dout)
    for got, exp in zip(ref[backward](dout, cache), want):
        np.testing.assert_allclose(got, exp, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("n, d", [(2, 3), (5, 8), (1, 4)])
def test_layernorm_matches_torch(ref, n, d):
    rng = np.random.default_rng(300 + n * d)
    x = offset_input(rng, (n, d), constant_axis=0)
    gamma, beta, dout = rng.normal(size=d), rng.normal(size=d), rng.normal(size=(n, d))
    out, cache = ref["layernorm_forward"](x, gamma, beta)
    want, grads = torch_autograd(lambda a, g, b: F.layer_norm(a, (d,), g, b, eps=1e-5), x, gamma, beta, dout=dout)
    np.testing.assert_allclose(out, want, rtol=1e-8, atol=1e-10)
    for got, exp in zip(ref["layernorm_backward"](dout, cache), grads):
        np.testing.assert_allclose(got, exp, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("shape", [(2, 3, 2, 2), (4, 2, 3, 1), (2, 5, 1, 3)])
def test_spatial_batchnorm_matches_batchnorm2d(ref, shape):
    rng = np.random.default_rng(400 + int(np.prod(shape)))
    c = shape[1]
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    bn = nn.BatchNorm2d(c).double()
    state = fresh_state(rng, c)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
        bn.running_mean.copy_(torch.from_numpy(state["running_mean"]))
        bn.running_var.copy_(torch.from_numpy(state["running_var"]))
    for _ in range(3):
        x = offset_input(rng, shape)
        out, cache, state = ref["spatial_batchnorm_forward"](x, gamma, beta, state, True)
        np.testing.assert_allclose(out, bn.train()(torch.from_numpy(x)).detach().numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(state["running_mean"], bn.running_mean.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(state["running_var"], bn.running_var.numpy(), rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=shape)
    _, grads = torch_autograd(lambda a, g, b: F.batch_norm(a, None, None, g, b, training=True, eps=1e-5),
                              x, gamma, beta, dout=dout)
    for got, exp in zip(ref["spatial_batchnorm_backward"](dout, cache), grads):
        np.testing.assert_allclose(got, exp, rtol=1e-7, atol=1e-9)
    x = offset_input(rng, shape)
    out, _, _ = ref["spatial_batchnorm_forward"](x, gamma, beta, state, False)
    np.testing.assert_allclose(out, bn.eval()(torch.from_numpy(x)).detach().numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("shape, groups", [((2, 6, 2, 2), 3), ((1, 4, 3, 1), 2), ((3, 6, 1, 2), 6),
                                           ((2, 4, 2, 3), 1)])
def test_groupnorm_matches_torch(ref, shape, groups):
    rng = np.random.default_rng(500 + groups)
    c = shape[1]
    x = 5.0 * rng.normal(size=shape) + 12.0
    x[0, :c // groups] = 2.0  # one group with zero variance
    gamma, beta, dout = rng.normal(size=c), rng.normal(size=c), rng.normal(size=shape)
    out, cache = ref["groupnorm_forward"](x, gamma, beta, groups)
    want, grads = torch_autograd(lambda a, g, b: F.group_norm(a, groups, g, b, eps=1e-5), x, gamma, beta, dout=dout)
    np.testing.assert_allclose(out, want, rtol=1e-8, atol=1e-10)
    for got, exp in zip(ref["groupnorm_backward"](dout, cache), grads):
        np.testing.assert_allclose(got, exp, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("d, m", [(3, 2), (6, 5), (1, 1)])
def test_fold_batchnorm_matches_fuse_linear_bn_eval(ref, d, m):
    rng = np.random.default_rng(600 + d * m)
    linear, bn = nn.Linear(d, m).double().eval(), nn.BatchNorm1d(m, eps=1e-3).double().eval()
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.copy_(torch.from_numpy(rng.normal(size=m) * 3))
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.1, 4.0, size=m)))
    as_np = lambda t: t.detach().numpy()
    w_f, b_f = ref["fold_batchnorm"](as_np(linear.weight).T, as_np(linear.bias), as_np(bn.weight), as_np(bn.bias),
                                     as_np(bn.running_mean), as_np(bn.running_var), eps=1e-3)
    fused = fuse_linear_bn_eval(linear, bn)
    np.testing.assert_allclose(w_f, as_np(fused.weight).T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b_f, as_np(fused.bias), rtol=1e-12, atol=1e-14)


def test_fold_mlp_and_predict(ref):
    from nnkit.data import load_mnist1d

    _, _, x_test, _ = load_mnist1d()
    model = ref["bn_mlp_for_tests"](seed=3)
    folded = ref["fold_mlp"](model)
    assert not any(isinstance(layer, nn.BatchNorm1d) for layer in folded)
    oracle = [fuse_linear_bn_eval(model[0].eval(), model[1].eval()), nn.ReLU(),
              fuse_linear_bn_eval(model[3].eval(), model[4].eval()), nn.ReLU(), model[6]]
    with torch.no_grad():
        want = nn.Sequential(*oracle)(torch.from_numpy(x_test)).numpy()
        got = folded.eval()(torch.from_numpy(x_test)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    model.train()  # predict must switch to eval mode itself
    batch = ref["predict"](model, x_test[:20])
    assert batch.dtype == np.int64
    np.testing.assert_array_equal(batch, [ref["predict"](model, x_test[i:i + 1])[0] for i in range(20)])
    np.testing.assert_array_equal(batch, want[:20].argmax(1))


def test_make_mlp_layout(ref):
    model = ref["make_mlp"](True, seed=0)
    assert [type(layer).__name__ for layer in model] == ["Linear", "BatchNorm1d", "ReLU"] * 3 + ["Linear"]
    assert [type(layer).__name__ for layer in ref["make_mlp"](False, seed=0)] == ["Linear", "ReLU"] * 3 + ["Linear"]
    torch.manual_seed(0)
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), nn.Linear(40, 128).weight.detach().numpy())


def test_train_follows_the_recipe(ref):
    from nnkit.data import load_mnist1d

    x, y, x_test, y_test = (torch.from_numpy(a) for a in load_mnist1d())
    oracle_model = ref["bn_mlp_for_tests"](seed=4)
    optimizer = torch.optim.SGD(oracle_model.parameters(), lr=0.2, momentum=0.9)
    oracle_model.train()
    want = sgd_epoch_losses(oracle_model, optimizer, x, y, epochs=2, batch_size=128, seed=4)
    oracle_model.eval()
    with torch.no_grad():
        want_acc = (oracle_model(x_test).argmax(1) == y_test).double().mean().item()
    got = ref["train"](ref["bn_mlp_for_tests"](seed=4), lr=0.2, epochs=2, seed=4, device="cpu", batch_size=128)
    np.testing.assert_allclose(got["loss_history"], want, rtol=1e-5)
    assert all(isinstance(v, float) for v in got["loss_history"])
    assert abs(got["test_accuracy"] - want_acc) < 1e-6


def test_batchnorm_trains_where_the_plain_mlp_fails(ref):
    for seed in (0, 1, 2):
        plain = ref["train"](ref["make_mlp"](False, seed), lr=1.0, epochs=5, seed=seed, device="cpu")
        normed = ref["train"](ref["make_mlp"](True, seed), lr=1.0, epochs=5, seed=seed, device="cpu")
        assert plain["test_accuracy"] <= 0.2 and not plain["loss_history"][-1] < 2.0, plain
        assert normed["loss_history"][-1] < 1.9 and normed["test_accuracy"] > 0.3, normed
        assert math.isfinite(normed["loss_history"][-1])
