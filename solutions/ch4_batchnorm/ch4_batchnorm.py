# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: kernelspec,language_info,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   language_info:
#     name: python
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Exercise 4: Batch normalization and its relatives
#
# Normalization layers rescale the activations inside a network so that every layer sees inputs of a
# controlled mean and scale. In this exercise you write them in NumPy, forward and backward, check them
# against PyTorch, and then use PyTorch's own layers to train a network at a learning rate where the
# network without them fails.
#
# 1. **Batch normalization** (Ioffe & Szegedy, 2015): `batchnorm_forward` in train and eval mode, with
#    running statistics; `batchnorm_backward` through the computational graph and `batchnorm_backward_alt`
#    in closed form.
# 2. **Layer normalization** (Ba et al., 2016): `layernorm_forward`, `layernorm_backward`.
# 3. **Spatial batch normalization and group normalization** (Wu & He, 2018) for images in NCHW layout.
# 4. **Folding** a batch-norm layer into the affine layer before it, for inference: `fold_batchnorm`.
# 5. **PyTorch**: `make_mlp`, `train`, `predict` and `fold_mlp` on MNIST-1D, on the GPU if there is one.
#
# Conventions: NumPy arrays in `float64`; every layer is a function `forward(...) -> (out, cache)` and
# `backward(dout, cache) -> gradients`, as in chapter 0.
# A layer with state (batch norm's running statistics) takes the state as a dict and returns a **new**
# dict; it never changes its arguments in place (the tests check that).
#
# Each graded cell shows some of its tests; more tests, with random shapes compared against
# `torch.nn.functional` and autograd, run when your notebook is graded.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import copy
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import nnkit
from nnkit.gradcheck import numerical_grad_array, rel_error
from nnkit.testing import check_array, check_close, check_grad, check_scalar

np.set_printoptions(precision=4, suppress=True)
# The networks here are small: on a CPU one thread is faster than two that wait for each other.
torch.set_num_threads(1)
print("torch", torch.__version__, "| device for training:", nnkit.pick_device())


# %% [markdown] nbgrader={"grade": false, "grade_id": "bn_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. Batch normalization, forward
#
# For a minibatch $x \in \mathbb R^{N \times D}$, batch normalization normalizes each feature (column)
# $j$ with the statistics of the batch and then scales and shifts it with learned parameters
# $\gamma, \beta \in \mathbb R^D$:
#
# $$\mu_j = \frac1N \sum_{i=1}^N x_{ij}, \qquad \sigma_j^2 = \frac1N \sum_{i=1}^N (x_{ij} - \mu_j)^2, \qquad
# \hat x_{ij} = \frac{x_{ij} - \mu_j}{\sqrt{\sigma_j^2 + \varepsilon}}, \qquad y_{ij} = \gamma_j \hat x_{ij} + \beta_j.$$
#
# The variance used to normalize is the **biased** one (divided by $N$). A feature that is constant over the
# batch has $\sigma_j^2 = 0$: $\varepsilon$ keeps the division finite and that feature's $\hat x$ is $0$.
#
# **Train and eval mode.** At test time the output for one example must not depend on the other examples in
# its batch, so the layer keeps *running* estimates of the mean and variance during training and
# normalizes with those in eval mode. This exercise follows PyTorch's `nn.BatchNorm1d` exactly:
#
# * train mode normalizes with $\mu$ and the biased $\sigma^2$ of the batch, and returns the new state
#   $$\text{running\_mean} \leftarrow (1 - m)\,\text{running\_mean} + m\,\mu, \qquad
#   \text{running\_var} \leftarrow (1 - m)\,\text{running\_var} + m\,\frac{N}{N-1}\,\sigma^2,$$
#   with `momentum` $m = 0.1$: the *new* batch gets weight $0.1$, and the running variance is fed the
#   **unbiased** batch variance ($N \ge 2$);
# * eval mode normalizes with `running_mean` and `running_var` (no batch statistics at all) and returns the
#   state unchanged (a new dict with equal values).
#
# Other code uses other conventions. The CS231n assignments, for example, write
# `running_mean = momentum * running_mean + (1 - momentum) * mean` with `momentum = 0.9` — there the
# momentum weights the *old* value, so their $0.9$ is PyTorch's $m = 0.1$ — and they feed the biased
# variance. Keras' `momentum=0.99` is also the weight of the old value. Converting: weight of the new batch
# $= 1 -$ (weight of the old value), and unbiased $=$ biased $\cdot N/(N-1)$.
#
# **Task.** Write `batchnorm_forward(x, gamma, beta, state, train, momentum=0.1, eps=1e-5)` returning
# `(out, cache, new_state)`. `state` is `{"running_mean": (D,), "running_var": (D,)}`. Do not modify `x` or
# `state`: build new arrays (`np.copy`, or expressions that create new arrays; `a *= ...` changes `a` in
# place). `cache` is whatever your backward pass needs (only the train-mode cache is used by the backward
# tests).

# %% nbgrader={"grade": false, "grade_id": "bn_forward_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchnorm_forward(x, gamma, beta, state, train, momentum=0.1, eps=1e-5):
    """Batch normalization of x (N, D) with PyTorch's conventions.

    gamma, beta: (D,). state: {"running_mean": (D,), "running_var": (D,)}.
    train: True to normalize with the batch statistics (and update the running ones),
           False to normalize with the running statistics.
    Returns (out, cache, new_state); x and state are left unchanged.
    """
    ### BEGIN SOLUTION
    running_mean = np.array(state["running_mean"], dtype=np.float64)
    running_var = np.array(state["running_var"], dtype=np.float64)
    if train:
        n = x.shape[0]
        mu = x.mean(axis=0)
        xc = x - mu
        var = (xc ** 2).mean(axis=0)
        inv_std = 1.0 / np.sqrt(var + eps)
        xhat = xc * inv_std
        new_state = {"running_mean": (1 - momentum) * running_mean + momentum * mu,
                     "running_var": (1 - momentum) * running_var + momentum * var * n / (n - 1)}
    else:
        xc = x - running_mean
        inv_std = 1.0 / np.sqrt(running_var + eps)
        xhat = xc * inv_std
        new_state = {"running_mean": running_mean, "running_var": running_var}
    out = gamma * xhat + beta
    cache = (xhat, xc, inv_std, gamma)
    ### END SOLUTION
    return out, cache, new_state


# %% nbgrader={"grade": true, "grade_id": "test_bn_forward_train", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
import torch.nn.functional as F
from nnkit.testing import check_array

# Column 0: mean 2, biased variance 1; column 1: mean 4, biased variance 4 (eps = 0 for round numbers).
x = np.array([[1.0, 2.0], [3.0, 6.0]])
state = {"running_mean": np.zeros(2), "running_var": np.ones(2)}
out, _, new_state = batchnorm_forward(x, np.array([1.0, 2.0]), np.array([0.0, 10.0]), state, train=True, eps=0.0)
check_array(out, [[-1.0, 8.0], [1.0, 12.0]], "batchnorm_forward: out (train)",
            hint="normalize each column with the batch mean and the variance divided by N, then gamma * xhat + beta")
check_array(new_state["running_mean"], [0.2, 0.4], "batchnorm_forward: new running_mean",
            hint="(1 - momentum) * running_mean + momentum * batch mean, momentum = 0.1 weights the new batch")
# unbiased batch variances: 1 * 2/1 = 2 and 4 * 2/1 = 8
check_array(new_state["running_var"], [0.9 + 0.2, 0.9 + 0.8], "batchnorm_forward: new running_var",
            hint="the running variance is fed the unbiased batch variance, sigma^2 * N / (N - 1)")
check_array(state["running_mean"], [0.0, 0.0], "batchnorm_forward must not change state['running_mean']")
check_array(state["running_var"], [1.0, 1.0], "batchnorm_forward must not change state['running_var']")
check_array(x, [[1.0, 2.0], [3.0, 6.0]], "batchnorm_forward must not change x")
print("batchnorm_forward (train): visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(4101)
cases = [(2, 3), (5, 4), (16, 7), (3, 1)]
for n, d in cases:
    x = 5.0 * rng_t.normal(size=(n, d)) + 12.0
    x[:, 0] = 3.5  # a feature with zero variance in the batch
    gamma, beta = rng_t.normal(size=d), rng_t.normal(size=d)
    rm, rv = rng_t.normal(size=d), rng_t.uniform(0.5, 2.0, size=d)
    momentum = float(rng_t.choice([0.1, 0.3]))
    state = {"running_mean": rm.copy(), "running_var": rv.copy()}
    x_before = x.copy()
    for step in range(3):  # several steps, each from the state returned by the previous one
        x_step = x + step * rng_t.normal(size=(n, d))
        t_rm, t_rv = torch.tensor(state["running_mean"]).clone(), torch.tensor(state["running_var"]).clone()
        expected = F.batch_norm(torch.from_numpy(x_step), t_rm, t_rv, torch.from_numpy(gamma), torch.from_numpy(beta),
                                training=True, momentum=momentum, eps=1e-5).numpy()
        kept = {k: v.copy() for k, v in state.items()}
        out, _, new_state = batchnorm_forward(x_step, gamma, beta, state, True, momentum=momentum)
        where = f"x {x.shape} = 5 randn + 12 with a constant column, momentum {momentum}, step {step}"
        check_array(out, expected, f"batchnorm_forward: out against F.batch_norm ({where})", rtol=1e-7, atol=1e-9)
        check_array(new_state["running_mean"], t_rm.numpy(), f"batchnorm_forward: running_mean against F.batch_norm ({where})",
                    rtol=1e-10, atol=1e-12)
        check_array(new_state["running_var"], t_rv.numpy(), f"batchnorm_forward: running_var against F.batch_norm ({where})",
                    rtol=1e-10, atol=1e-12, hint="PyTorch stores the unbiased variance; momentum weights the new batch")
        for k in kept:
            check_array(state[k], kept[k], f"batchnorm_forward changed state[{k!r}] in place ({where})", rtol=0, atol=0)
        state = new_state
    check_array(x, x_before, "batchnorm_forward changed x in place", rtol=0, atol=0)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_bn_forward_eval", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.testing import check_array

x = np.array([[1.0, 2.0], [3.0, 6.0]])
state = {"running_mean": np.array([1.0, -2.0]), "running_var": np.array([4.0, 0.25])}
out, _, new_state = batchnorm_forward(x, np.array([1.0, 2.0]), np.array([0.0, 10.0]), state, train=False, eps=0.0)
check_array(out, [[0.0, 26.0], [1.0, 42.0]], "batchnorm_forward: out (eval)",
            hint="in eval mode, normalize with state's running_mean and running_var, not with the batch")
check_array(new_state["running_mean"], [1.0, -2.0], "batchnorm_forward (eval): new running_mean",
            hint="eval mode returns the state unchanged")
check_array(new_state["running_var"], [4.0, 0.25], "batchnorm_forward (eval): new running_var")
# One example at a time gives the same rows as the whole batch.
row, _, _ = batchnorm_forward(x[1:], np.array([1.0, 2.0]), np.array([0.0, 10.0]), state, train=False, eps=0.0)
check_array(row, out[1:], "batchnorm_forward (eval): one example alone")
print("batchnorm_forward (eval): visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(4102)
for n, d in [(2, 3), (7, 5), (1, 4)]:
    x = 5.0 * rng_t.normal(size=(n, d)) + 12.0
    gamma, beta = rng_t.normal(size=d), rng_t.normal(size=d)
    rm, rv = rng_t.normal(size=d), rng_t.uniform(0.5, 2.0, size=d)
    state = {"running_mean": rm.copy(), "running_var": rv.copy()}
    expected = F.batch_norm(torch.from_numpy(x), torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy()),
                            torch.from_numpy(gamma), torch.from_numpy(beta), training=False, eps=1e-5).numpy()
    out, _, new_state = batchnorm_forward(x, gamma, beta, state, False)
    check_array(out, expected, f"batchnorm_forward (eval) against F.batch_norm, x {x.shape}", rtol=1e-9, atol=1e-10)
    check_array(new_state["running_mean"], rm, "batchnorm_forward (eval) must return running_mean unchanged", rtol=0, atol=0)
    check_array(new_state["running_var"], rv, "batchnorm_forward (eval) must return running_var unchanged", rtol=0, atol=0)
    check_array(state["running_mean"], rm, "batchnorm_forward (eval) changed state in place", rtol=0, atol=0)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "bn_backward_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. Batch normalization, backward
#
# **Through the graph.** Write the train-mode forward pass as a chain of small steps — $\mu$, $x - \mu$,
# its square, $\sigma^2$, $\sqrt{\sigma^2 + \varepsilon}$, its inverse, $\hat x$, $\gamma \hat x$,
# $+\beta$ — and backpropagate through each step in reverse order, as in chapter 0. Every step is a local
# derivative times the upstream gradient; where a value was broadcast over the batch in the forward pass
# (a per-feature quantity used by every row), its gradient is a sum over the batch. `batchnorm_backward`
# follows the graph this way.
#
# **Closed form.** Working the chain out on paper collapses it to one expression for $\partial L/\partial x$
# in terms of $\hat x$, $\partial L / \partial \hat x$, $1/\sqrt{\sigma^2 + \varepsilon}$ and sums over the
# batch. Derive it (the mean $\mu$ and the variance $\sigma^2$ both depend on every $x_{ij}$ of column $j$;
# $\sum_i \hat x_{ij} = 0$ simplifies the result) and write it in `batchnorm_backward_alt`.
#
# Both return `(dx, dgamma, dbeta)` for a cache of train mode. The tests use a random upstream gradient
# `dout`: with `dout` all ones, $\partial L / \partial x$ of a correct batch norm is exactly zero, and some
# wrong formulas give zero too.

# %% nbgrader={"grade": false, "grade_id": "bn_backward_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def batchnorm_backward(dout, cache):
    """Backward pass of train-mode batch normalization, step by step through the graph.

    dout: (N, D). Returns (dx (N, D), dgamma (D,), dbeta (D,)).
    """
    ### BEGIN SOLUTION
    xhat, xc, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    # xhat = xc * inv_std
    dxc = dxhat * inv_std
    dinv_std = (dxhat * xc).sum(axis=0)
    # inv_std = 1 / std, std = sqrt(var + eps)
    std = 1.0 / inv_std
    dstd = -dinv_std / std ** 2
    dvar = dstd * 0.5 * inv_std
    # var = mean(sq), sq = xc ** 2
    dsq = np.ones_like(xc) * dvar / n
    dxc = dxc + 2.0 * xc * dsq
    # xc = x - mu, mu = mean(x)
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / n
    ### END SOLUTION
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """The same gradients from the closed-form expression for dx."""
    ### BEGIN SOLUTION
    xhat, _, inv_std, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    dx = inv_std * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0))
    ### END SOLUTION
    return dx, dgamma, dbeta


# %% nbgrader={"grade": true, "grade_id": "test_bn_backward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_grad

rng_t = np.random.default_rng(41)
x = 5.0 * rng_t.normal(size=(6, 4)) + 12.0
gamma, beta, dout = rng_t.normal(size=4), rng_t.normal(size=4), rng_t.normal(size=(6, 4))
state = {"running_mean": np.zeros(4), "running_var": np.ones(4)}
_, cache, _ = batchnorm_forward(x, gamma, beta, state, True)
dx, dgamma, dbeta = batchnorm_backward(dout, cache)
forward = lambda _: batchnorm_forward(x, gamma, beta, state, True)[0]
check_grad(dx, numerical_grad_array(forward, x, dout), "batchnorm_backward: dx (gradient check)", tol=1e-6)
check_grad(dgamma, numerical_grad_array(forward, gamma, dout), "batchnorm_backward: dgamma (gradient check)")
check_grad(dbeta, numerical_grad_array(forward, beta, dout), "batchnorm_backward: dbeta (gradient check)")
print("batchnorm_backward: visible checks passed")
### BEGIN HIDDEN TESTS
def autograd_batch_norm(x, gamma, beta, dout):
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5).backward(torch.from_numpy(dout))
    return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


rng_t = np.random.default_rng(4103)
for n, d in [(2, 3), (5, 4), (13, 6), (4, 1)]:
    x = 5.0 * rng_t.normal(size=(n, d)) + 12.0
    x[:, -1] = -2.0  # zero variance
    gamma, beta, dout = rng_t.normal(size=d), rng_t.normal(size=d), rng_t.normal(size=(n, d))
    _, cache, _ = batchnorm_forward(x, gamma, beta, {"running_mean": np.zeros(d), "running_var": np.ones(d)}, True)
    want = autograd_batch_norm(x, gamma, beta, dout)
    for name, got, exp in zip(("dx", "dgamma", "dbeta"), batchnorm_backward(dout, cache), want):
        check_array(got, exp, f"batchnorm_backward: {name} against autograd, x {x.shape}", rtol=1e-6, atol=1e-8)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_bn_backward_alt", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_grad

rng_t = np.random.default_rng(42)
x = 5.0 * rng_t.normal(size=(6, 4)) + 12.0
gamma, beta, dout = rng_t.normal(size=4), rng_t.normal(size=4), rng_t.normal(size=(6, 4))
state = {"running_mean": np.zeros(4), "running_var": np.ones(4)}
_, cache, _ = batchnorm_forward(x, gamma, beta, state, True)
dx, dgamma, dbeta = batchnorm_backward_alt(dout, cache)
forward = lambda _: batchnorm_forward(x, gamma, beta, state, True)[0]
check_grad(dx, numerical_grad_array(forward, x, dout), "batchnorm_backward_alt: dx (gradient check)", tol=1e-6)
check_grad(dgamma, numerical_grad_array(forward, gamma, dout), "batchnorm_backward_alt: dgamma (gradient check)")
check_grad(dbeta, numerical_grad_array(forward, beta, dout), "batchnorm_backward_alt: dbeta (gradient check)")
print("batchnorm_backward_alt: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(4104)
for n, d in [(2, 3), (6, 5), (17, 4), (3, 1)]:
    x = 5.0 * rng_t.normal(size=(n, d)) + 12.0
    x[:, 0] = 7.0
    gamma, beta, dout = rng_t.normal(size=d), rng_t.normal(size=d), rng_t.normal(size=(n, d))
    _, cache, _ = batchnorm_forward(x, gamma, beta, {"running_mean": np.zeros(d), "running_var": np.ones(d)}, True)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5).backward(torch.from_numpy(dout))
    for name, got, exp in zip(("dx", "dgamma", "dbeta"), batchnorm_backward_alt(dout, cache),
                              (xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy())):
        check_array(got, exp, f"batchnorm_backward_alt: {name} against autograd, x {x.shape}", rtol=1e-6, atol=1e-8)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "bn_timing_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The cell below (optional, not graded) times the two backward passes on a larger batch. The closed form
# makes fewer passes over the `(N, D)` arrays; how much faster it is depends on your two implementations.

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "bn_timing", "locked": true, "schema_version": 3, "solution": false, "task": false}
rng_demo = np.random.default_rng(0)
x_big = rng_demo.normal(size=(512, 1024))
g_big, b_big, dout_big = rng_demo.normal(size=1024), rng_demo.normal(size=1024), rng_demo.normal(size=(512, 1024))
_, cache_big, _ = batchnorm_forward(x_big, g_big, b_big, {"running_mean": np.zeros(1024), "running_var": np.ones(1024)}, True)
timings = {}
for fn in (batchnorm_backward, batchnorm_backward_alt):
    start = time.perf_counter()
    for _ in range(20):
        grads = fn(dout_big, cache_big)
    timings[fn.__name__] = (time.perf_counter() - start) / 20
dx_graph, dx_alt = batchnorm_backward(dout_big, cache_big)[0], batchnorm_backward_alt(dout_big, cache_big)[0]
print(f"largest difference between the two dx: {np.abs(dx_graph - dx_alt).max():.2e}")
for name, seconds in timings.items():
    print(f"{name:<24} {1000 * seconds:7.2f} ms")
print(f"speed-up of the closed form: {timings['batchnorm_backward'] / timings['batchnorm_backward_alt']:.2f}x")

# %% [markdown] nbgrader={"grade": false, "grade_id": "ln_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. Layer normalization
#
# Layer normalization computes the same statistics per **example**, over its $D$ features, instead of per
# feature over the batch:
#
# $$\mu_i = \frac1D \sum_{j} x_{ij}, \qquad \sigma_i^2 = \frac1D \sum_j (x_{ij} - \mu_i)^2, \qquad
# y_{ij} = \gamma_j \frac{x_{ij} - \mu_i}{\sqrt{\sigma_i^2 + \varepsilon}} + \beta_j,$$
#
# with $\gamma, \beta \in \mathbb R^D$ per feature, as in `torch.nn.LayerNorm(D)`. No example depends on
# another, so there is no running state and train and eval mode are the same. Write
# `layernorm_forward(x, gamma, beta, eps=1e-5) -> (out, cache)` and `layernorm_backward(dout, cache) ->
# (dx, dgamma, dbeta)`. The backward pass is batch norm's with the roles of the axes exchanged for the
# statistics — but not for $\gamma$ and $\beta$, which are still per feature.

# %% nbgrader={"grade": false, "grade_id": "ln_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalization of x (N, D) over its features. gamma, beta: (D,). Returns (out, cache)."""
    ### BEGIN SOLUTION
    xc = x - x.mean(axis=1, keepdims=True)
    inv_std = 1.0 / np.sqrt((xc ** 2).mean(axis=1, keepdims=True) + eps)
    xhat = xc * inv_std
    out = gamma * xhat + beta
    cache = (xhat, inv_std, gamma)
    ### END SOLUTION
    return out, cache


def layernorm_backward(dout, cache):
    """Returns (dx (N, D), dgamma (D,), dbeta (D,))."""
    ### BEGIN SOLUTION
    xhat, inv_std, gamma = cache
    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    g = dout * gamma
    dx = inv_std * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    ### END SOLUTION
    return dx, dgamma, dbeta


# %% nbgrader={"grade": true, "grade_id": "test_layernorm_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.testing import check_array

# Row 0: mean 2, biased variance 1; row 1: mean 0, biased variance 4.
x = np.array([[1.0, 3.0], [-2.0, 2.0]])
out, _ = layernorm_forward(x, np.array([1.0, 3.0]), np.array([0.5, 0.0]), eps=0.0)
check_array(out, [[-0.5, 3.0], [-0.5, 3.0]], "layernorm_forward: out",
            hint="normalize each row (example) with its own mean and variance; gamma and beta are per column")
check_array(x, [[1.0, 3.0], [-2.0, 2.0]], "layernorm_forward must not change x")
print("layernorm_forward: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(4105)
for n, d in [(2, 3), (5, 7), (1, 6), (4, 2)]:
    x = 5.0 * rng_t.normal(size=(n, d)) + 12.0
    x[0] = 4.0  # an example with zero variance
    gamma, beta = rng_t.normal(size=d), rng_t.normal(size=d)
    expected = F.layer_norm(torch.from_numpy(x), (d,), torch.from_numpy(gamma), torch.from_numpy(beta), eps=1e-5).numpy()
    check_array(layernorm_forward(x, gamma, beta)[0], expected, f"layernorm_forward against F.layer_norm, x {x.shape}",
                rtol=1e-7, atol=1e-9)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_layernorm_backward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_grad

rng_t = np.random.default_rng(43)
x = 3.0 * rng_t.normal(size=(4, 5)) - 6.0
gamma, beta, dout = rng_t.normal(size=5), rng_t.normal(size=5), rng_t.normal(size=(4, 5))
_, cache = layernorm_forward(x, gamma, beta)
dx, dgamma, dbeta = layernorm_backward(dout, cache)
forward = lambda _: layernorm_forward(x, gamma, beta)[0]
check_grad(dx, numerical_grad_array(forward, x, dout), "layernorm_backward: dx (gradient check)", tol=1e-6)
check_grad(dgamma, numerical_grad_array(forward, gamma, dout), "layernorm_backward: dgamma (gradient check)",
           hint="gamma is per feature: its gradient sums over the examples")
check_grad(dbeta, numerical_grad_array(forward, beta, dout), "layernorm_backward: dbeta (gradient check)")
print("layernorm_backward: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(4106)
for n, d in [(2, 3), (6, 8), (1, 5), (7, 2)]:
    x = 5.0 * rng_t.normal(size=(n, d)) + 12.0
    gamma, beta, dout = rng_t.normal(size=d), rng_t.normal(size=d), rng_t.normal(size=(n, d))
    _, cache = layernorm_forward(x, gamma, beta)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    F.layer_norm(xt, (d,), gt, bt, eps=1e-5).backward(torch.from_numpy(dout))
    for name, got, exp in zip(("dx", "dgamma", "dbeta"), layernorm_backward(dout, cache),
                              (xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy())):
        check_array(got, exp, f"layernorm_backward: {name} against autograd, x {x.shape}", rtol=1e-6, atol=1e-8)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "spatial_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. Spatial batch normalization and group normalization
#
# Convolutional layers produce arrays of shape `(N, C, H, W)`: $N$ examples, $C$ channels, $H \times W$
# positions. A convolution applies the same filter at every position, so its normalization is per
# **channel**: `nn.BatchNorm2d(C)` takes the mean and variance of channel $c$ over the $N \cdot H \cdot W$
# values of the batch and all positions, and has one $\gamma_c, \beta_c$ per channel. The running statistics
# follow the rules of section 1, with $N \cdot H \cdot W$ in place of $N$ in the unbiased correction.
#
# **Task.** Write `spatial_batchnorm_forward(x, gamma, beta, state, train, momentum=0.1, eps=1e-5) ->
# (out, cache, new_state)` and `spatial_batchnorm_backward(dout, cache) -> (dx, dgamma, dbeta)`, with
# `gamma`, `beta` and the running statistics of shape `(C,)`. You may reuse your `batchnorm_forward` and a
# backward pass of section 2 after moving the channel axis last and flattening the rest. The tests compare
# with PyTorch only; if you reuse your 2-D functions, they also have to be right.
#
# **Group normalization** (Wu & He, 2018) normalizes each example on its own, like layer normalization,
# but over groups of channels: the $C$ channels are split into `groups` consecutive groups of $C/G$ channels
# (channels $0 \ldots C/G - 1$ are group 0, and so on), and each example's mean and variance are taken over
# the $C/G \cdot H \cdot W$ values of one group. $\gamma$ and $\beta$ are per channel, shape `(C,)`. With
# one group it is layer normalization over $(C, H, W)$; with $C$ groups it is *instance normalization*.
# Write `groupnorm_forward(x, gamma, beta, groups, eps=1e-5) -> (out, cache)` and `groupnorm_backward(dout,
# cache) -> (dx, dgamma, dbeta)`; `groups` divides $C$.

# %% nbgrader={"grade": false, "grade_id": "spatial_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def spatial_batchnorm_forward(x, gamma, beta, state, train, momentum=0.1, eps=1e-5):
    """Batch normalization of x (N, C, H, W) per channel. gamma, beta, running statistics: (C,).
    Returns (out, cache, new_state); x and state are left unchanged."""
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out_flat, cache, new_state = batchnorm_forward(flat, gamma, beta, state, train, momentum, eps)
    out = out_flat.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    ### END SOLUTION
    return out, cache, new_state


def spatial_batchnorm_backward(dout, cache):
    """Returns (dx (N, C, H, W), dgamma (C,), dbeta (C,)) for a train-mode cache."""
    ### BEGIN SOLUTION
    n, c, h, w = dout.shape
    dx_flat, dgamma, dbeta = batchnorm_backward_alt(dout.transpose(0, 2, 3, 1).reshape(-1, c), cache)
    dx = dx_flat.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    ### END SOLUTION
    return dx, dgamma, dbeta


def groupnorm_forward(x, gamma, beta, groups, eps=1e-5):
    """Group normalization of x (N, C, H, W) with `groups` groups of consecutive channels.
    gamma, beta: (C,). Returns (out, cache)."""
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    xg = x.reshape(n, groups, -1)
    xc = xg - xg.mean(axis=2, keepdims=True)
    inv_std = 1.0 / np.sqrt((xc ** 2).mean(axis=2, keepdims=True) + eps)
    xhat = (xc * inv_std).reshape(n, c, h, w)
    out = gamma.reshape(1, c, 1, 1) * xhat + beta.reshape(1, c, 1, 1)
    cache = (xhat, inv_std, gamma, groups)
    ### END SOLUTION
    return out, cache


def groupnorm_backward(dout, cache):
    """Returns (dx (N, C, H, W), dgamma (C,), dbeta (C,))."""
    ### BEGIN SOLUTION
    xhat, inv_std, gamma, groups = cache
    n, c, h, w = dout.shape
    dgamma = (dout * xhat).sum(axis=(0, 2, 3))
    dbeta = dout.sum(axis=(0, 2, 3))
    g = (dout * gamma.reshape(1, c, 1, 1)).reshape(n, groups, -1)
    xg = xhat.reshape(n, groups, -1)
    dx = inv_std * (g - g.mean(axis=2, keepdims=True) - xg * (g * xg).mean(axis=2, keepdims=True))
    dx = dx.reshape(n, c, h, w)
    ### END SOLUTION
    return dx, dgamma, dbeta


# %% nbgrader={"grade": true, "grade_id": "test_spatial_bn_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.testing import check_array

# Channel 0 holds 1 and 3 (mean 2, variance 1), channel 1 holds 0 and 4 (mean 2, variance 4), each at
# two positions of two examples.
x = np.array([[[[1.0, 3.0]], [[0.0, 4.0]]], [[[3.0, 1.0]], [[4.0, 0.0]]]])  # (N, C, H, W) = (2, 2, 1, 2)
state = {"running_mean": np.zeros(2), "running_var": np.ones(2)}
out, _, new_state = spatial_batchnorm_forward(x, np.array([1.0, 2.0]), np.array([0.0, 1.0]), state, True, eps=0.0)
check_array(out, [[[[-1.0, 1.0]], [[-1.0, 3.0]]], [[[1.0, -1.0]], [[3.0, -1.0]]]], "spatial_batchnorm_forward: out",
            hint="the statistics of channel c are over x[:, c, :, :], all examples and positions")
check_array(new_state["running_mean"], [0.2, 0.2], "spatial_batchnorm_forward: new running_mean")
check_array(new_state["running_var"], [0.9 + 0.1 * 4 / 3, 0.9 + 0.1 * 16 / 3], "spatial_batchnorm_forward: new running_var",
            hint="unbiased over the N * H * W = 4 values of a channel")
check_array(state["running_var"], [1.0, 1.0], "spatial_batchnorm_forward must not change state")
print("spatial_batchnorm_forward: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(4107)
for shape in [(2, 3, 2, 2), (3, 4, 1, 5), (2, 2, 3, 1), (4, 5, 2, 3)]:
    n, c, h, w = shape
    x = 5.0 * rng_t.normal(size=shape) + 12.0
    x[:, 1] = -1.5  # a channel with zero variance
    gamma, beta = rng_t.normal(size=c), rng_t.normal(size=c)
    state = {"running_mean": rng_t.normal(size=c), "running_var": rng_t.uniform(0.5, 2.0, size=c)}
    original, kept = state, {k: v.copy() for k, v in state.items()}
    for step, mode in enumerate([True, True, False]):
        x_step = x + step * rng_t.normal(size=shape)
        t_rm, t_rv = torch.tensor(state["running_mean"]).clone(), torch.tensor(state["running_var"]).clone()
        expected = F.batch_norm(torch.from_numpy(x_step), t_rm, t_rv, torch.from_numpy(gamma), torch.from_numpy(beta),
                                training=mode, momentum=0.1, eps=1e-5).numpy()
        out, _, new_state = spatial_batchnorm_forward(x_step, gamma, beta, state, mode)
        where = f"x {shape}, step {step}, train={mode}"
        check_array(out, expected, f"spatial_batchnorm_forward: out against F.batch_norm ({where})", rtol=1e-7, atol=1e-9)
        check_array(new_state["running_mean"], t_rm.numpy(), f"spatial_batchnorm_forward: running_mean ({where})",
                    rtol=1e-10, atol=1e-12)
        check_array(new_state["running_var"], t_rv.numpy(), f"spatial_batchnorm_forward: running_var ({where})",
                    rtol=1e-10, atol=1e-12)
        state = new_state
    for k in kept:
        check_array(original[k], kept[k], f"spatial_batchnorm_forward changed state[{k!r}] in place", rtol=0, atol=0)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_spatial_bn_backward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_grad

rng_t = np.random.default_rng(44)
x = 5.0 * rng_t.normal(size=(2, 3, 2, 3)) + 12.0
gamma, beta, dout = rng_t.normal(size=3), rng_t.normal(size=3), rng_t.normal(size=(2, 3, 2, 3))
state = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
_, cache, _ = spatial_batchnorm_forward(x, gamma, beta, state, True)
dx, dgamma, dbeta = spatial_batchnorm_backward(dout, cache)
forward = lambda _: spatial_batchnorm_forward(x, gamma, beta, state, True)[0]
check_grad(dx, numerical_grad_array(forward, x, dout), "spatial_batchnorm_backward: dx (gradient check)", tol=1e-6)
check_grad(dgamma, numerical_grad_array(forward, gamma, dout), "spatial_batchnorm_backward: dgamma (gradient check)",
           hint="gamma[c] is used at every example and position of channel c")
check_grad(dbeta, numerical_grad_array(forward, beta, dout), "spatial_batchnorm_backward: dbeta (gradient check)")
print("spatial_batchnorm_backward: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(4108)
for shape in [(2, 3, 2, 2), (3, 2, 1, 4), (2, 4, 3, 2)]:
    n, c, h, w = shape
    x = 5.0 * rng_t.normal(size=shape) + 12.0
    gamma, beta, dout = rng_t.normal(size=c), rng_t.normal(size=c), rng_t.normal(size=shape)
    _, cache, _ = spatial_batchnorm_forward(x, gamma, beta, {"running_mean": np.zeros(c), "running_var": np.ones(c)}, True)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5).backward(torch.from_numpy(dout))
    for name, got, exp in zip(("dx", "dgamma", "dbeta"), spatial_batchnorm_backward(dout, cache),
                              (xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy())):
        check_array(got, exp, f"spatial_batchnorm_backward: {name} against autograd, x {shape}", rtol=1e-6, atol=1e-8)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_groupnorm_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.testing import check_array

# One example, 4 channels of 1 x 2 positions, 2 groups: group 0 = channels 0, 1 holds 1, 3, 1, 3;
# group 1 = channels 2, 3 holds 0, 0, 4, 4 (mean 2, variance 4).
x = np.array([[[[1.0, 3.0]], [[1.0, 3.0]], [[0.0, 0.0]], [[4.0, 4.0]]]])
out, _ = groupnorm_forward(x, np.array([1.0, 1.0, 2.0, 2.0]), np.zeros(4), groups=2, eps=0.0)
check_array(out, [[[[-1.0, 1.0]], [[-1.0, 1.0]], [[-2.0, -2.0]], [[2.0, 2.0]]]], "groupnorm_forward: out",
            hint="group g holds the consecutive channels g*C/G ... (g+1)*C/G - 1 of one example")
print("groupnorm_forward: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(4109)
for shape, groups in [((2, 6, 2, 2), 3), ((1, 4, 3, 1), 2), ((3, 6, 1, 2), 2), ((2, 4, 2, 3), 4), ((2, 3, 2, 2), 1)]:
    c = shape[1]
    x = 5.0 * rng_t.normal(size=shape) + 12.0
    x[0, :c // groups] = 2.0  # a group with zero variance
    gamma, beta = rng_t.normal(size=c), rng_t.normal(size=c)
    expected = F.group_norm(torch.from_numpy(x), groups, torch.from_numpy(gamma), torch.from_numpy(beta), eps=1e-5).numpy()
    check_array(groupnorm_forward(x, gamma, beta, groups)[0], expected,
                f"groupnorm_forward against F.group_norm, x {shape}, {groups} groups", rtol=1e-7, atol=1e-9)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_groupnorm_backward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_grad

rng_t = np.random.default_rng(45)
x = 3.0 * rng_t.normal(size=(2, 4, 2, 3)) + 5.0
gamma, beta, dout = rng_t.normal(size=4), rng_t.normal(size=4), rng_t.normal(size=(2, 4, 2, 3))
_, cache = groupnorm_forward(x, gamma, beta, 2)
dx, dgamma, dbeta = groupnorm_backward(dout, cache)
forward = lambda _: groupnorm_forward(x, gamma, beta, 2)[0]
check_grad(dx, numerical_grad_array(forward, x, dout), "groupnorm_backward: dx (gradient check)", tol=1e-6)
check_grad(dgamma, numerical_grad_array(forward, gamma, dout), "groupnorm_backward: dgamma (gradient check)")
check_grad(dbeta, numerical_grad_array(forward, beta, dout), "groupnorm_backward: dbeta (gradient check)")
print("groupnorm_backward: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(4110)
for shape, groups in [((2, 6, 2, 2), 3), ((1, 4, 3, 1), 2), ((3, 6, 1, 2), 6), ((2, 4, 2, 3), 1)]:
    c = shape[1]
    x = 5.0 * rng_t.normal(size=shape) + 12.0
    gamma, beta, dout = rng_t.normal(size=c), rng_t.normal(size=c), rng_t.normal(size=shape)
    _, cache = groupnorm_forward(x, gamma, beta, groups)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    F.group_norm(xt, groups, gt, bt, eps=1e-5).backward(torch.from_numpy(dout))
    for name, got, exp in zip(("dx", "dgamma", "dbeta"), groupnorm_backward(dout, cache),
                              (xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy())):
        check_array(got, exp, f"groupnorm_backward: {name} against autograd, x {shape}, {groups} groups",
                    rtol=1e-6, atol=1e-8)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "fold_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 5. Folding batch normalization into the layer before it
#
# In eval mode batch normalization is a fixed affine map of each feature,
# $y_j = \gamma_j (z_j - \text{running\_mean}_j)/\sqrt{\text{running\_var}_j + \varepsilon} + \beta_j$. When
# it follows an affine layer $z = x W + b$ (chapter 0's layout: $W$ of shape `(D, M)`), the two together are
# one affine layer $y = x W' + b'$, and a deployed network can drop the batch-norm layer. Write
# `fold_batchnorm(w, b, gamma, beta, running_mean, running_var, eps=1e-5) -> (w_folded, b_folded)` so that
# `x @ w_folded + b_folded` equals the eval-mode batch norm of `x @ w + b` for every `x`.
#
# PyTorch does the same in `torch.nn.utils.fusion.fuse_linear_bn_eval(linear, bn)`. Its `nn.Linear` stores
# the weight as `(M, D)` and computes `x @ weight.T`: transpose when you move weights between the two.

# %% nbgrader={"grade": false, "grade_id": "fold_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fold_batchnorm(w, b, gamma, beta, running_mean, running_var, eps=1e-5):
    """w (D, M), b (M,), the rest (M,). Returns (w_folded (D, M), b_folded (M,))."""
    ### BEGIN SOLUTION
    scale = gamma / np.sqrt(running_var + eps)
    return w * scale, (b - running_mean) * scale + beta
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fold_batchnorm", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.testing import check_array

w = np.array([[1.0, 2.0], [3.0, -1.0]])
b = np.array([0.5, 1.0])
w_f, b_f = fold_batchnorm(w, b, gamma=np.array([2.0, 1.0]), beta=np.array([1.0, 0.0]),
                          running_mean=np.array([0.5, 3.0]), running_var=np.array([4.0, 1.0]), eps=0.0)
check_array(w_f, [[1.0, 2.0], [3.0, -1.0]], "fold_batchnorm: w_folded",
            hint="each output column m of w is scaled by gamma[m] / sqrt(running_var[m] + eps)")
check_array(b_f, [1.0, -2.0], "fold_batchnorm: b_folded")
print("fold_batchnorm: visible checks passed")
### BEGIN HIDDEN TESTS
from torch.nn.utils.fusion import fuse_linear_bn_eval

rng_t = np.random.default_rng(4111)
for d, m in [(3, 2), (5, 7), (1, 4)]:
    w, b = rng_t.normal(size=(d, m)), rng_t.normal(size=m)
    gamma, beta = rng_t.normal(size=m), rng_t.normal(size=m)
    rm, rv = 3.0 * rng_t.normal(size=m) + 2.0, rng_t.uniform(0.1, 5.0, size=m)
    linear = nn.Linear(d, m).double().eval()
    bn = nn.BatchNorm1d(m, eps=1e-5).double().eval()
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w.T))  # PyTorch's layout is (M, D)
        linear.bias.copy_(torch.from_numpy(b))
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
        bn.running_mean.copy_(torch.from_numpy(rm))
        bn.running_var.copy_(torch.from_numpy(rv))
    fused = fuse_linear_bn_eval(linear, bn)
    w_f, b_f = fold_batchnorm(w, b, gamma, beta, rm, rv)
    check_array(w_f, fused.weight.detach().numpy().T, f"fold_batchnorm: w_folded against fuse_linear_bn_eval, w {w.shape}",
                rtol=1e-9, atol=1e-12)
    check_array(b_f, fused.bias.detach().numpy(), f"fold_batchnorm: b_folded against fuse_linear_bn_eval, w {w.shape}",
                rtol=1e-9, atol=1e-12)
    x = rng_t.normal(size=(4, d)) * 5.0 + 12.0
    with torch.no_grad():
        want = bn(linear(torch.from_numpy(x))).numpy()
    check_array(x @ w_f + b_f, want, "fold_batchnorm: folded layer against Linear + BatchNorm1d in eval mode",
                rtol=1e-9, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "torch_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 6. Batch normalization in PyTorch
#
# Now the real layers. `nn.BatchNorm1d(M)` keeps $\gamma, \beta$ as parameters and the running statistics
# as *buffers*, and behaves as your `batchnorm_forward` with `train=model.training`: `model.train()` and
# `model.eval()` switch every layer of a model. Forgetting `model.eval()` before evaluating is a classic
# bug: the predictions then depend on which other examples share the batch, and a single example cannot be
# normalized at all (PyTorch raises an error).
#
# **Tasks.**
#
# * `make_mlp(batchnorm, seed, hidden=(128, 128, 128))`: call `torch.manual_seed(seed)`, then build an
#   `nn.Sequential` of `nn.Linear(40, 128)`, `nn.BatchNorm1d(128)` (only if `batchnorm`), `nn.ReLU()`, the
#   same for each further hidden width, and a final `nn.Linear(128, 10)`, with PyTorch's default
#   initialization. Batch norm sits between each hidden `Linear` and its `ReLU`, as in Ioffe & Szegedy.
# * `train(model, lr, epochs, seed, device, batch_size=100)`: train `model` on the MNIST-1D training set
#   (`nnkit.data.load_mnist1d()`) on `device`, with `torch.optim.SGD(model.parameters(), lr=lr,
#   momentum=0.9)` and `F.cross_entropy`, following the course's recipe: one `torch.Generator()` seeded
#   once with `seed` (on the CPU), a new `torch.randperm` from it every epoch, batches of `batch_size`
#   consecutive examples of that order, and each epoch's loss the example-weighted mean of the batch losses.
#   The model is in train mode while it trains. Afterwards, in **eval mode** and without gradients, compute
#   the accuracy on the test set. Return `{"loss_history": [one float per epoch], "test_accuracy": float}`;
#   the model is trained in place (and left on `device`).
# * `predict(model, x)`: the predicted classes (an `int64` NumPy array of shape `(N,)`) of the `float32`
#   NumPy inputs `x`, computed in eval mode without gradients, on the device the model is on.
#
# The tests train models of their own with your `train`, so `train` is graded independently of
# `make_mlp`. The provided drivers below let the tests see what `make_mlp` and `fold_mlp` build.

# %% nbgrader={"grade": false, "grade_id": "torch_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_mlp(batchnorm, seed, hidden=(128, 128, 128)):
    """An MLP 40 -> hidden... -> 10 for MNIST-1D, with BatchNorm1d between each hidden Linear and its ReLU
    when batchnorm is True."""
    ### BEGIN SOLUTION
    torch.manual_seed(seed)
    layers, width = [], 40
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batchnorm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(nn.ReLU())
        width = size
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)
    ### END SOLUTION


def train(model, lr, epochs, seed, device, batch_size=100):
    """Train model in place on MNIST-1D with SGD (momentum 0.9) on device.
    Returns {"loss_history": [float] * epochs, "test_accuracy": float}."""
    ### BEGIN SOLUTION
    from nnkit.data import load_mnist1d

    device = torch.device(device)
    x_train, y_train, x_test, y_test = load_mnist1d()
    x_train, y_train = torch.from_numpy(x_train).to(device), torch.from_numpy(y_train).to(device)
    x_test, y_test = torch.from_numpy(x_test).to(device), torch.from_numpy(y_test).to(device)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    n = len(x_train)
    loss_history = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        loss_history.append(total.item() / n)
    model.eval()
    with torch.no_grad():
        test_accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    return {"loss_history": loss_history, "test_accuracy": test_accuracy}
    ### END SOLUTION


def predict(model, x):
    """Predicted classes (int64 ndarray (N,)) for the float32 inputs x (N, 40), in eval mode."""
    ### BEGIN SOLUTION
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        scores = model(torch.as_tensor(x, dtype=torch.float32).to(device))
    return scores.argmax(dim=1).cpu().numpy().astype(np.int64)
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "torch_drivers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def bn_mlp_for_tests(seed, hidden=(64, 64)):
    """A BN MLP the tests build themselves (not with make_mlp), with non-trivial gamma, beta and running
    statistics, so that batch statistics and running statistics give different outputs."""
    draws = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layers, width = [], 40
    for size in hidden:
        bn = nn.BatchNorm1d(size)
        with torch.no_grad():
            bn.weight.copy_(1 + 0.3 * torch.randn(size, generator=draws))
            bn.bias.copy_(0.3 * torch.randn(size, generator=draws))
            bn.running_mean.copy_(0.5 * torch.randn(size, generator=draws))
            bn.running_var.copy_(0.2 + torch.rand(size, generator=draws))
        layers += [nn.Linear(width, size), bn, nn.ReLU()]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, 10))


# %% nbgrader={"grade": false, "grade_id": "drivers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def layer_summary(model):
    """[(layer class name, {parameter name: shape})] for the layers of an nn.Sequential."""
    return [(type(layer).__name__, {k: tuple(v.shape) for k, v in layer.named_parameters()}) for layer in model]


def model_outputs(model, x):
    """The eval-mode scores of model for the float32 inputs x, as a float64 NumPy array, computed on the CPU."""
    model.cpu().eval()
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()


def make_mlp_summary(batchnorm, seed, hidden=(128, 128, 128)):
    """The layers of make_mlp(batchnorm, seed, hidden), for the tests."""
    return layer_summary(make_mlp(batchnorm, seed, hidden))


def make_mlp_outputs(batchnorm, seed, hidden, x):
    """The eval-mode scores of a fresh make_mlp(batchnorm, seed, hidden) for x, for the tests."""
    return model_outputs(make_mlp(batchnorm, seed, hidden), x)


def fold_mlp_summary(model, x):
    """(layers, eval-mode scores for x) of fold_mlp(model), for the tests."""
    folded = fold_mlp(model)
    return layer_summary(folded), model_outputs(folded, x)


# %% nbgrader={"grade": true, "grade_id": "test_make_mlp", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
summary = make_mlp_summary(True, seed=0)
names = [name for name, _ in summary]
assert names == ["Linear", "BatchNorm1d", "ReLU"] * 3 + ["Linear"], \
    f"make_mlp(True, 0) should be [Linear, BatchNorm1d, ReLU] x 3 + [Linear], got {names}"
shapes = [params.get("weight") for _, params in summary]
assert shapes[0] == (128, 40) and shapes[1] == (128,) and shapes[-1] == (10, 128), \
    f"make_mlp(True, 0): weight shapes {shapes}; expected Linear(40, 128) first and Linear(128, 10) last"
plain = [name for name, _ in make_mlp_summary(False, seed=0)]
assert plain == ["Linear", "ReLU"] * 3 + ["Linear"], f"make_mlp(False, 0) should have no BatchNorm1d, got {plain}"
print("make_mlp: visible checks passed")
### BEGIN HIDDEN TESTS
import torch
import torch.nn as nn

torch.manual_seed(3)
mine = nn.Sequential(nn.Linear(40, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10)).eval()
x_probe = np.random.default_rng(4112).normal(size=(5, 40)).astype(np.float32)
with torch.no_grad():
    expected = mine(torch.from_numpy(x_probe)).double().numpy()
check_array(make_mlp_outputs(True, 3, (64,), x_probe), expected,
            "make_mlp(True, 3, hidden=(64,)): outputs of a fresh model against the same layers built after "
            "torch.manual_seed(3)", rtol=1e-5, atol=1e-6)
names = [name for name, _ in make_mlp_summary(True, seed=1, hidden=(32, 16))]
assert names == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"], \
    f"make_mlp(True, 1, hidden=(32, 16)) gave {names}"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_train_recipe", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np
import nnkit
import torch
import torch.nn as nn

result = train(bn_mlp_for_tests(seed=1), lr=0.1, epochs=2, seed=1, device=nnkit.pick_device())
assert isinstance(result, dict) and {"loss_history", "test_accuracy"} <= set(result), \
    f"train should return a dict with the keys 'loss_history' and 'test_accuracy', got {result!r:.200}"
losses = result["loss_history"]
assert isinstance(losses, list) and len(losses) == 2 and all(isinstance(v, float) and math.isfinite(v) for v in losses), \
    f"loss_history should be a list of 2 finite Python floats (one per epoch, use .item()), got {losses!r:.200}"
assert losses[1] < losses[0] < 2.6, f"the loss should start near or below ln 10 and fall: {losses}"
acc = result["test_accuracy"]
assert isinstance(acc, float) and 0.3 < acc <= 1.0, f"test_accuracy should be a float well above chance, got {acc!r}"
print(f"train: loss {losses[0]:.3f} -> {losses[1]:.3f}, test accuracy {acc:.3f}")
### BEGIN HIDDEN TESTS
import torch.nn.functional as F
from nnkit.data import load_mnist1d


def replay(model, lr, epochs, seed, batch_size):
    """The recipe of the task on the CPU: (epoch losses, eval-mode test accuracy)."""
    x, y, x_test, y_test = (torch.from_numpy(a) for a in load_mnist1d())
    sgd = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    shuffler, history = torch.Generator().manual_seed(seed), []
    for _ in range(epochs):
        model.train()
        order, total = torch.randperm(len(x), generator=shuffler), 0.0
        for first in range(0, len(x), batch_size):
            rows = order[first:first + batch_size]
            loss = F.cross_entropy(model(x[rows]), y[rows])
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            total += loss.item() * len(rows)
        history.append(total / len(x))
    model.eval()
    with torch.no_grad():
        return history, (model(x_test).argmax(1) == y_test).double().mean().item()


for seed, lr, batch_size in [(2, 0.1, 100), (3, 0.3, 128)]:
    got = train(bn_mlp_for_tests(seed), lr=lr, epochs=2, seed=seed, device="cpu", batch_size=batch_size)
    want_losses, want_acc = replay(bn_mlp_for_tests(seed), lr, 2, seed, batch_size)
    setting = f"seed {seed}, lr {lr}, batch_size {batch_size}, 2 epochs on the CPU"
    check_close(got["loss_history"], want_losses, f"train: loss history against a replay of the recipe ({setting})",
                rtol=1e-5, atol=1e-6, hint="SGD with momentum 0.9, one torch.Generator seeded once, a new randperm "
                "each epoch, example-weighted mean loss, model.train() while training")
    assert abs(got["test_accuracy"] - want_acc) < 1e-6, \
        (f"train: test_accuracy {got['test_accuracy']} but the eval-mode accuracy of the trained model is {want_acc} "
         f"({setting}). Compute it with model.eval(), after training.")
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "high_lr_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The next test trains the same MLP (3 hidden layers of 128, PyTorch's default initialization) with and without
# batch norm at `lr=1.0` (momentum 0.9) for 5 epochs. Measured over seeds 0–9 on a CPU before the test was written:
# without batch norm, the loss jumps above $\ln 10$ (up to 34 in one epoch) or becomes NaN, the last epoch's loss
# is 2.28 or more (or NaN) and the test accuracy 0.089–0.157, about chance; with batch norm, the last epoch's
# loss is 1.45–1.61 and the test accuracy 0.37–0.47. The test asks for less: without batch norm an accuracy of
# at most 0.2 and a last loss not below 2.0, with batch norm a last loss below 1.9 and an accuracy above 0.3.

# %% nbgrader={"grade": true, "grade_id": "test_bn_high_lr", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import nnkit
import torch
import torch.nn as nn


def test_mlp(batchnorm, seed):
    """The MLP of make_mlp, built here so that this test depends on train only."""
    torch.manual_seed(seed)
    layers, width = [], 40
    for _ in range(3):
        layers += [nn.Linear(width, 128)] + ([nn.BatchNorm1d(128)] if batchnorm else []) + [nn.ReLU()]
        width = 128
    return nn.Sequential(*layers, nn.Linear(width, 10))


device = nnkit.pick_device()
for seed in (0, 1):
    plain = train(test_mlp(False, seed), lr=1.0, epochs=5, seed=seed, device=device)
    normed = train(test_mlp(True, seed), lr=1.0, epochs=5, seed=seed, device=device)
    print(f"seed {seed}: without BN loss {plain['loss_history'][-1]:.3f}, accuracy {plain['test_accuracy']:.3f}; "
          f"with BN loss {normed['loss_history'][-1]:.3f}, accuracy {normed['test_accuracy']:.3f}")
    assert not plain["test_accuracy"] > 0.2 and not plain["loss_history"][-1] < 2.0, \
        f"seed {seed}: without batch norm, lr=1.0 should fail (accuracy near 0.1), got {plain}"
    final = normed["loss_history"][-1]
    assert math.isfinite(final) and final < 1.9 and normed["test_accuracy"] > 0.3, \
        f"seed {seed}: with batch norm the MLP should train at lr=1.0: {normed}"
### BEGIN HIDDEN TESTS
for seed in (2, 3):
    normed = train(test_mlp(True, seed), lr=1.0, epochs=5, seed=seed, device=device)
    assert normed["loss_history"][-1] < 1.9 and normed["test_accuracy"] > 0.3, f"seed {seed}: {normed}"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_predict_eval", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.data import load_mnist1d
from nnkit.testing import check_array

_, _, x_test, _ = load_mnist1d()
x_few = x_test[:24]
net = bn_mlp_for_tests(seed=5)
batch = predict(net, x_few)
assert isinstance(batch, np.ndarray) and batch.shape == (24,) and batch.dtype == np.int64, \
    f"predict should return an int64 array of shape (24,), got {type(batch).__name__} {getattr(batch, 'shape', '')} {getattr(batch, 'dtype', '')}"
alone = np.array([predict(net, x_few[i:i + 1])[0] for i in range(len(x_few))])
check_array(batch, alone, "predict: classes for a batch against the same examples one at a time", dtype=np.int64,
            hint="in eval mode batch norm uses its running statistics and the examples do not interact: model.eval()")
reference = bn_mlp_for_tests(seed=5).eval()
with torch.no_grad():
    want = reference(torch.from_numpy(x_few)).argmax(1).numpy()
check_array(batch, want, "predict: classes against the model in eval mode", dtype=np.int64)
print("predict: visible checks passed")
### BEGIN HIDDEN TESTS
for seed in (6, 7):
    x_many = x_test[100 * seed:100 * seed + 200]
    reference = bn_mlp_for_tests(seed=seed).eval()
    with torch.no_grad():
        want = reference(torch.from_numpy(x_many)).argmax(1).numpy()
    check_array(predict(bn_mlp_for_tests(seed=seed), x_many), want, f"predict: 200 examples, model seed {seed}",
                dtype=np.int64)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "fold_mlp_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Folding a trained network
#
# **Task.** Write `fold_mlp(model)`: for an `nn.Sequential` of `Linear`, `BatchNorm1d` and `ReLU` layers (in
# the order of `make_mlp`), return a **new** `nn.Sequential` without the batch-norm layers, in which each
# `Linear` followed by a `BatchNorm1d` is replaced by one `nn.Linear` whose weights come from your
# `fold_batchnorm` (convert to float64 NumPy, transpose PyTorch's `(M, D)` weight to `(D, M)`, and back).
# Use the batch-norm layer's `eps`. In eval mode the new model computes the same scores as the old one,
# up to float32 rounding. Leave `model` unchanged; return the new model on the CPU.

# %% nbgrader={"grade": false, "grade_id": "fold_mlp_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fold_mlp(model):
    """A new nn.Sequential without BatchNorm1d layers, computing model's eval-mode function."""
    ### BEGIN SOLUTION
    layers = list(model)
    folded, i = [], 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, nn.Linear) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm1d):
            bn = layers[i + 1]
            as_np = lambda t: t.detach().cpu().double().numpy()
            w_f, b_f = fold_batchnorm(as_np(layer.weight).T, as_np(layer.bias), as_np(bn.weight), as_np(bn.bias),
                                      as_np(bn.running_mean), as_np(bn.running_var), eps=bn.eps)
            new = nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                new.weight.copy_(torch.from_numpy(w_f.T))
                new.bias.copy_(torch.from_numpy(b_f))
            folded.append(new)
            i += 2
        else:
            folded.append(copy.deepcopy(layer).cpu())
            i += 1
    return nn.Sequential(*folded)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fold_mlp", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.data import load_mnist1d
from nnkit.testing import check_array

_, _, x_test, _ = load_mnist1d()
summary, scores = fold_mlp_summary(bn_mlp_for_tests(seed=8), x_test[:50])
names = [name for name, _ in summary]
assert names == ["Linear", "ReLU", "Linear", "ReLU", "Linear"], \
    f"fold_mlp should leave Linear, ReLU, Linear, ReLU, Linear, got {names}"
reference = bn_mlp_for_tests(seed=8).eval()
with torch.no_grad():
    want = reference(torch.from_numpy(x_test[:50])).double().numpy()
check_array(scores, want, "fold_mlp: scores of the folded model against the BN model in eval mode",
            rtol=1e-4, atol=1e-4)
print("fold_mlp: visible checks passed")
### BEGIN HIDDEN TESTS
from torch.nn.utils.fusion import fuse_linear_bn_eval

for seed, hidden in [(9, (64, 64)), (10, (32,))]:
    source = bn_mlp_for_tests(seed=seed, hidden=hidden).eval()
    fused = []
    for k in range(len(hidden)):
        fused += [fuse_linear_bn_eval(source[3 * k], source[3 * k + 1]), nn.ReLU()]
    oracle = nn.Sequential(*fused, source[-1]).eval()
    with torch.no_grad():
        want = oracle(torch.from_numpy(x_test[:30])).double().numpy()
    check_array(fold_mlp_summary(bn_mlp_for_tests(seed=seed, hidden=hidden), x_test[:30])[1], want,
                f"fold_mlp: scores against torch.nn.utils.fusion.fuse_linear_bn_eval, model seed {seed}, hidden {hidden}",
                rtol=1e-4, atol=1e-4)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "compare_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 7. With and without batch normalization
#
# The cell below (optional, not graded) trains `make_mlp` with and without batch norm at a few learning rates
# and plots the loss curves. Questions for yourself: up to which learning rate does the plain MLP train? Does
# batch norm still help at a small learning rate? These are single runs with one seed on a small data set.

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "compare_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
device = nnkit.pick_device()
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
for ax, lr in zip(axes, [0.05, 0.3, 1.0]):
    for batchnorm in (False, True):
        run = train(make_mlp(batchnorm, seed=0), lr=lr, epochs=8, seed=0, device=device)
        label = f"{'with' if batchnorm else 'without'} BN (test acc {run['test_accuracy']:.2f})"
        ax.plot(range(1, 9), run["loss_history"], marker="o", label=label)
    ax.axhline(math.log(10), color="gray", linestyle=":")
    ax.set(title=f"lr = {lr}", xlabel="epoch", ylim=(0.5, 3.5))
    ax.legend(fontsize=8)
axes[0].set_ylabel("mean training loss")
fig.tight_layout()
plt.show()

# %% [markdown] nbgrader={"grade": false, "grade_id": "refs", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## References
#
# * S. Ioffe, C. Szegedy. *Batch normalization: accelerating deep network training by reducing internal
#   covariate shift.* ICML 2015.
# * J. L. Ba, J. R. Kiros, G. E. Hinton. *Layer normalization.* arXiv:1607.06450, 2016.
# * Y. Wu, K. He. *Group normalization.* ECCV 2018.
# * PyTorch documentation: `torch.nn.BatchNorm1d`, `torch.nn.BatchNorm2d`, `torch.nn.LayerNorm`,
#   `torch.nn.GroupNorm`, `torch.nn.utils.fusion`.
# * S. Greydanus. *Scaling down deep learning* (MNIST-1D), 2020.
