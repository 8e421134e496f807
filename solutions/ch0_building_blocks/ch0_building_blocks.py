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
# # Exercise 0: building blocks
#
# Every later chapter is built from the pieces in this notebook, and every backward pass in the
# course is checked the way you check them here. You will write, in NumPy:
#
# 1. an **affine layer**, forward and backward;
# 2. five **losses** with their gradients: MSE, MAE, RMSE, Huber and softmax cross-entropy;
# 3. a **numerical gradient checker**;
# 4. the fix for a **planted bug** in the backward pass of a small two-layer network, found with
#    your gradient checker;
#
# and then, in PyTorch:
#
# 5. the gradients of the same network by **autograd**, and the **minibatch SGD training loop**
#    that the later chapters reuse, trained on MNIST-1D.
#
# **How this notebook is graded.** Replace each `raise NotImplementedError()` with your code and
# keep the function names and signatures. The test cell under each task runs checks you can
# read: small cases whose answers you can work out by hand, and a numerical gradient check. When
# your notebook is graded, the same cells also run hidden checks with random shapes and values
# against PyTorch, so code that only fits the visible cases will lose points. A test cell earns
# its points only if every check in it passes: one failed check, or an error raised by your
# code, scores zero for that cell. A test compares your function with values it computes
# itself, never with your answer to another task, so a mistake costs the points of its own task.
# Warnings (a NumPy `RuntimeWarning`, say) cost no points, though they often point to a bug.
# Before you submit, restart the kernel and run every cell in order; with correct code the whole
# notebook takes well under a minute on a laptop CPU.
#
# **Conventions.** The batch is the first axis: an input `x` has shape `(N, D)`, one row per
# example. Every loss is a *mean*: the cross-entropy over the $N$ examples of the batch, the
# regression losses over all $S$ elements of the prediction (for $N$ examples with $K$ outputs
# each, $S = NK$), as PyTorch's `reduction="mean"` does. So the gradient of a loss carries a
# factor $1/N$ or $1/S$. `dout` always means the upstream gradient
# $\partial L/\partial\,\text{out}$, an array with the shape of `out`. Gradients are checked
# in `float64` (section 3 explains why).

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import nnkit
from nnkit.testing import check_array, check_close, check_grad, check_scalar

# The arrays in this notebook are tiny: extra CPU threads cost more in synchronisation than
# they save, and on a shared machine they slow everyone down.
torch.set_num_threads(1)
torch.manual_seed(0)
rng = np.random.default_rng(0)
np.set_printoptions(precision=4, suppress=True)


# %% [markdown] nbgrader={"grade": false, "grade_id": "md_affine", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. The affine layer
#
# A fully connected (affine) layer maps every row of $x \in \mathbb{R}^{N\times D}$ with a weight
# matrix $W \in \mathbb{R}^{D\times M}$ and a bias $b \in \mathbb{R}^{M}$:
#
# $$
# \text{out} = xW + b, \qquad \text{out}_{nm} = \sum_{d=1}^{D} x_{nd}\,W_{dm} + b_m .
# $$
#
# The bias is broadcast: the same $b$ is added to each of the $N$ rows.
#
# **Backward.** Let $G = \partial L/\partial\,\text{out}$ (shape $N\times M$). The chain
# rule sums over every output an input touches:
#
# $$
# \frac{\partial L}{\partial x_{nd}} = \sum_{n', m} G_{n'm}\,
# \frac{\partial\,\text{out}_{n'm}}{\partial x_{nd}},
# $$
#
# and the same for $W_{dm}$ and $b_m$. Read the partial derivatives off the formula for
# $\text{out}_{nm}$ (most of them are 0), write the three sums, then find the matrix products
# that compute them. The visible tests check your result against a numerical gradient.
#
# Two habits make such formulas easy to derive. A gradient has the shape of the variable it
# belongs to, and usually only one product of the available matrices has that shape. And a
# variable that is used several times (here $b$, once per row) receives the *sum* of the
# gradients from each use.
#
# **Task.** Implement `affine_forward` and `affine_backward`. The matrix product `@` and
# broadcasting do all the work; no Python loops are needed.
# `cache` is whatever the backward pass needs from the forward pass: the tests only hand it from
# one function to the other.

# %% nbgrader={"grade": false, "grade_id": "affine", "locked": false, "schema_version": 3, "solution": true, "task": false}
def affine_forward(x, w, b):
    """Affine layer forward pass: out = x @ w + b.

    Parameters
    ----------
    x : ndarray, shape (N, D)
        A batch of inputs, one row per example.
    w : ndarray, shape (D, M)
        Weights.
    b : ndarray, shape (M,)
        Biases, shared by all rows.

    Returns
    -------
    out : ndarray, shape (N, M)
    cache : object
        Whatever affine_backward needs.
    """
    ### BEGIN SOLUTION
    out = x @ w + b
    cache = (x, w)
    ### END SOLUTION
    return out, cache


def affine_backward(dout, cache):
    """Affine layer backward pass.

    Parameters
    ----------
    dout : ndarray, shape (N, M)
        Upstream gradient dL/dout.
    cache : object
        The cache returned by affine_forward.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dw : ndarray, shape (D, M)
    db : ndarray, shape (M,)
    """
    ### BEGIN SOLUTION
    x, w = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout.sum(axis=0)
    ### END SOLUTION
    return dx, dw, db


# %% nbgrader={"grade": true, "grade_id": "test_affine_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
x = np.array([[1.0, 2.0], [-1.0, 0.5]])
w = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.5]])
b = np.array([0.5, -1.0, 0.0])
out, _ = affine_forward(x, w, b)
check_array(out, [[5.5, 1.0, 0.0], [0.5, -0.5, 1.25]], "affine_forward: out",
            hint="out[n, m] = sum over d of x[n, d] * w[d, m], plus b[m]")

# b is added to every row: each row of out is 3 + [0, 1, 2, 3, 4]
out, _ = affine_forward(np.ones((4, 3)), np.ones((3, 5)), np.arange(5.0))
check_array(out, np.tile(3.0 + np.arange(5.0), (4, 1)), "affine_forward: out for a (4, 3) batch",
            hint="the bias is broadcast over the rows (the batch axis)")
print("affine_forward: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(1001)
for _ in range(5):
    n, d, m = (int(v) for v in rng_t.integers(1, 9, size=3))
    x = rng_t.normal(size=(n, d))
    w = rng_t.normal(size=(d, m))
    b = rng_t.normal(size=m)
    out, _ = affine_forward(x, w, b)
    expected = F.linear(torch.from_numpy(x), torch.from_numpy(w).T, torch.from_numpy(b)).numpy()
    check_array(out, expected, f"affine_forward: out for x {x.shape}, w {w.shape}", rtol=1e-10, atol=1e-12)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_affine_backward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from nnkit.gradcheck import numerical_grad_array

x = np.array([[1.0, 2.0], [-1.0, 0.5]])
w = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.5]])
b = np.array([0.5, -1.0, 0.0])
dout = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
_, cache = affine_forward(x, w, b)
dx, dw, db = affine_backward(dout, cache)
check_array(dx, [[1.0, 2.0], [-1.0, 1.5]], "affine_backward: dx",
            hint="dx has the shape of x, (N, D): which product of dout (N, M) and w (D, M) has that shape?")
check_array(dw, [[1.0, -1.0, -1.0], [2.0, 0.5, 0.5]], "affine_backward: dw",
            hint="dw has the shape of w, (D, M): which product of x (N, D) and dout (N, M) has that shape?")
check_array(db, [1.0, 1.0, 1.0], "affine_backward: db",
            hint="b is used by every row of out, so db collects a contribution from every row; db has shape (M,)")

# Gradient check (float64, centered differences; section 3 has you write this yourself).
rng_t = np.random.default_rng(7)
x, w, b = rng_t.normal(size=(3, 4)), rng_t.normal(size=(4, 5)), rng_t.normal(size=5)
dout = rng_t.normal(size=(3, 5))
_, cache = affine_forward(x, w, b)
dx, dw, db = affine_backward(dout, cache)
forward = lambda _: affine_forward(x, w, b)[0]
check_grad(dx, numerical_grad_array(forward, x, dout), "affine_backward: dx (gradient check)")
check_grad(dw, numerical_grad_array(forward, w, dout), "affine_backward: dw (gradient check)")
check_grad(db, numerical_grad_array(forward, b, dout), "affine_backward: db (gradient check)")
print("affine_backward: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(1002)
for _ in range(5):
    n, d, m = (int(v) for v in rng_t.integers(1, 9, size=3))
    x, w, b = rng_t.normal(size=(n, d)), rng_t.normal(size=(d, m)), rng_t.normal(size=m)
    dout = rng_t.normal(size=(n, m))
    _, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    (xt @ wt + bt).backward(torch.from_numpy(dout))
    shapes = f"x {x.shape}, w {w.shape}"
    check_array(dx, xt.grad.numpy(), f"affine_backward: dx for {shapes}", rtol=1e-10, atol=1e-12)
    check_array(dw, wt.grad.numpy(), f"affine_backward: dw for {shapes}", rtol=1e-10, atol=1e-12)
    check_array(db, bt.grad.numpy(), f"affine_backward: db for {shapes}", rtol=1e-10, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "md_regression_losses", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. Losses
#
# ### Regression losses
#
# `pred` and `target` have the same shape (any shape). Let $r_i = \text{pred}_i - \text{target}_i$
# be the residuals and $S$ the number of elements. Each loss is a mean over **all** $S$ elements,
# as with `reduction="mean"` in PyTorch, and each function returns `(loss, dpred)`: the loss as a
# Python `float` and $\partial L/\partial\,\text{pred}$, an array with the shape and dtype of `pred`
# (float32 in, float32 out: later chapters train in float32).
#
# | loss | $L$ |
# | --- | --- |
# | MSE | $\frac{1}{S}\sum_i r_i^2$ |
# | MAE | $\frac{1}{S}\sum_i \lvert r_i\rvert$ |
# | RMSE | $\sqrt{\text{MSE}}$ |
# | Huber | $\frac{1}{S}\sum_i \ell_\delta(r_i)$ |
#
# Derive each gradient yourself: differentiate one term with respect to the prediction it
# contains, and remember the $1/S$ of the mean. The visible tests compare your gradients with a
# numerical gradient, so they tell you when a derivation went wrong.
#
# * **MAE** has a kink at $r_i = 0$, where every value in $[-1, 1]$ is a subgradient. Use $0$
#   there, which is also what PyTorch's `l1_loss` uses.
# * **RMSE** is an increasing function of the MSE, so both have the same minimiser; RMSE is
#   usually *reported* because it has the units of the target. Its gradient follows from the MSE
#   gradient by the chain rule. At a perfect fit ($L = 0$) that chain rule divides 0 by 0;
#   return a zero gradient there. (PyTorch's `torch.sqrt(F.mse_loss(...))` returns NaN gradients
#   at that point.) As a training loss RMSE behaves differently from MSE: the length of its
#   gradient with respect to `pred` is $1/\sqrt{S}$ for *every* nonzero residual, so, like the MAE
#   gradient and unlike the MSE gradient, it does not shrink as the fit improves. The visible
#   test checks this property of your `rmse_loss`; the chapter page shows what it does to
#   gradient descent with a constant learning rate.
# * **Huber** (Huber, 1964) is quadratic for small residuals and linear for large ones:
#
#   $$
#   \ell_\delta(r) = \begin{cases} \tfrac12 r^2 & \lvert r\rvert \le \delta \\
#   \delta\left(\lvert r\rvert - \tfrac12\delta\right) & \lvert r\rvert > \delta \end{cases}
#   $$
#
#   The two pieces and their slopes meet at $\lvert r\rvert = \delta$, so the loss has a
#   continuous derivative. Near zero it behaves like MSE; far out like MAE, so an outlier's pull
#   on the gradient is bounded. It is `torch.nn.functional.huber_loss(pred, target, delta=δ)`;
#   `F.smooth_l1_loss(..., beta=δ)` is the same function divided by $\delta$.
#
# **Task.** Implement `mse_loss`, `mae_loss`, `rmse_loss` and `huber_loss` (NumPy's elementwise
# operations need no loops). The visible tests check your gradients numerically with
# `nnkit.gradcheck`, the same algorithm you write yourself in section 3.

# %% nbgrader={"grade": false, "grade_id": "regression_losses", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mse_loss(pred, target):
    """Mean squared error over all elements.

    pred, target : ndarrays of the same shape
    Returns (loss, dpred): loss a float, dpred = dL/dpred with the shape of pred.
    """
    ### BEGIN SOLUTION
    residual = pred - target
    loss = float(np.mean(residual ** 2))
    dpred = 2.0 * residual / residual.size
    ### END SOLUTION
    return loss, dpred


def mae_loss(pred, target):
    """Mean absolute error over all elements; the subgradient at a zero residual is 0.

    pred, target : ndarrays of the same shape
    Returns (loss, dpred): loss a float, dpred = dL/dpred with the shape of pred.
    """
    ### BEGIN SOLUTION
    residual = pred - target
    loss = float(np.mean(np.abs(residual)))
    dpred = np.sign(residual) / residual.size
    ### END SOLUTION
    return loss, dpred


def rmse_loss(pred, target):
    """Root mean squared error: sqrt of the MSE over all elements (zero gradient at a perfect fit).

    pred, target : ndarrays of the same shape
    Returns (loss, dpred): loss a float, dpred = dL/dpred with the shape of pred.
    """
    ### BEGIN SOLUTION
    residual = pred - target
    loss = float(np.sqrt(np.mean(residual ** 2)))
    if loss == 0.0:
        dpred = np.zeros_like(residual)
    else:
        dpred = residual / (residual.size * loss)
    ### END SOLUTION
    return loss, dpred


def huber_loss(pred, target, delta=1.0):
    """Huber loss with threshold delta, mean over all elements (as torch.nn.functional.huber_loss).

    pred, target : ndarrays of the same shape; delta : float > 0
    Returns (loss, dpred): loss a float, dpred = dL/dpred with the shape of pred.
    """
    ### BEGIN SOLUTION
    residual = pred - target
    size = np.abs(residual)
    per_element = np.where(size <= delta, 0.5 * residual ** 2, delta * (size - 0.5 * delta))
    loss = float(np.mean(per_element))
    dpred = np.clip(residual, -delta, delta) / residual.size
    ### END SOLUTION
    return loss, dpred


# %% nbgrader={"grade": true, "grade_id": "test_mse_mae_rmse_loss", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from nnkit.gradcheck import numerical_grad

pred, target = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0])   # residuals 0, 2, 3
loss, dpred = mse_loss(pred, target)
assert isinstance(loss, float), f"mse_loss: the loss should be a Python float, got {type(loss).__name__}"
check_scalar(loss, 13.0 / 3.0, "mse_loss: loss", hint="mean of the squared residuals")
check_array(dpred, [0.0, 4.0 / 3.0, 2.0], "mse_loss: dpred",
            hint="differentiate r_i**2 with respect to pred_i, and keep the 1/S of the mean")
loss, dpred = mse_loss(np.array([[1.0, 3.0], [0.0, 0.0]]), np.zeros((2, 2)))
check_scalar(loss, 2.5, "mse_loss: loss of a (2, 2) array", hint="average over all elements, not per row")
check_array(dpred, [[0.5, 1.5], [0.0, 0.0]], "mse_loss: dpred of a (2, 2) array")

pred, target = np.array([1.0, 2.0, -3.0]), np.array([1.0, 0.0, 0.0])  # residuals 0, 2, -3
loss, dpred = mae_loss(pred, target)
assert isinstance(loss, float), f"mae_loss: the loss should be a Python float, got {type(loss).__name__}"
check_scalar(loss, 5.0 / 3.0, "mae_loss: loss", hint="mean of the absolute residuals")
check_array(dpred, [0.0, 1.0 / 3.0, -1.0 / 3.0], "mae_loss: dpred",
            hint="|r| has slope -1 or +1 away from the kink (use 0 at a zero residual); keep the 1/S of the mean")

loss, dpred = rmse_loss(np.array([[3.0, 4.0], [0.0, 0.0]]), np.zeros((2, 2)))   # MSE = 25/4
assert isinstance(loss, float), f"rmse_loss: the loss should be a Python float, got {type(loss).__name__}"
check_scalar(loss, 2.5, "rmse_loss: loss", hint="the square root of the mean over all elements")
check_array(dpred, [[0.3, 0.4], [0.0, 0.0]], "rmse_loss: dpred",
            hint="chain rule: the derivative of sqrt(m) at m = MSE, times the gradient of the MSE")
loss, dpred = rmse_loss(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
check_scalar(loss, 0.0, "rmse_loss: loss at a perfect fit")
check_array(dpred, [0.0, 0.0], "rmse_loss: dpred at a perfect fit",
            hint="the gradient formula is 0/0 here: return zeros")

rng_t = np.random.default_rng(11)
pred, target = rng_t.normal(size=(3, 4)), rng_t.normal(size=(3, 4))
for name, fn in (("mse_loss", mse_loss), ("mae_loss", mae_loss), ("rmse_loss", rmse_loss)):
    _, dpred = fn(pred, target)
    check_grad(dpred, numerical_grad(lambda _: fn(pred, target)[0], pred), f"{name}: dpred (gradient check)")
    # float32 in, float32 out
    _, dpred32 = fn(pred.astype(np.float32), target.astype(np.float32))
    assert isinstance(dpred32, np.ndarray) and dpred32.dtype == np.float32, (
        f"{name}: float32 inputs should give a float32 dpred, got "
        f"{getattr(dpred32, 'dtype', type(dpred32).__name__)}; avoid creating float64 arrays (np.zeros(shape), "
        "np.array of Python floats) and do not cast")

# The RMSE gradient has length 1/sqrt(S) = 1/sqrt(12) whatever the size of the residuals.
for scale in (1e-3, 1.0, 1e3):
    _, dpred = rmse_loss(scale * pred, scale * target)
    check_scalar(float(np.linalg.norm(dpred)), 1.0 / np.sqrt(pred.size),
                 f"rmse_loss: length of dpred for residuals scaled by {scale:g}", rtol=1e-9,
                 hint="the length of the RMSE gradient does not depend on the size of the residuals")
print("mse_loss, mae_loss, rmse_loss: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(2001)
oracles = (("mse_loss", mse_loss, F.mse_loss), ("mae_loss", mae_loss, F.l1_loss),
           ("rmse_loss", rmse_loss, lambda p, t: torch.sqrt(F.mse_loss(p, t))))
for trial in range(6):
    shape = tuple(int(v) for v in rng_t.integers(1, 6, size=int(rng_t.integers(1, 4))))
    pred, target = rng_t.normal(size=shape) * 3, rng_t.normal(size=shape)
    if trial % 2:
        target.flat[1::2] = pred.flat[1::2]  # exact zeros: the MAE kink
    for name, fn, oracle in oracles:
        p = torch.tensor(pred, requires_grad=True)
        expected = oracle(p, torch.from_numpy(target))
        expected.backward()
        loss, dpred = fn(pred, target)
        assert isinstance(loss, float), f"{name}: the loss should be a Python float, got {type(loss).__name__}"
        check_scalar(loss, expected.item(), f"{name}: loss for shape {shape}", rtol=1e-10, atol=1e-12)
        check_array(dpred, p.grad.numpy(), f"{name}: dpred for shape {shape}", rtol=1e-9, atol=1e-12)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_huber_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from nnkit.gradcheck import numerical_grad

pred, target = np.array([0.5, -2.0, 3.0, 0.0]), np.zeros(4)
# delta = 1: per-element losses 0.125, 1.5, 2.5, 0 and slopes 0.5, -1, 1, 0
loss, dpred = huber_loss(pred, target)
assert isinstance(loss, float), f"huber_loss: the loss should be a Python float, got {type(loss).__name__}"
check_scalar(loss, 4.125 / 4, "huber_loss: loss with the default delta=1",
             hint="0.5 r^2 where |r| <= delta, delta * (|r| - delta / 2) elsewhere, then the mean")
check_array(dpred, [0.125, -0.25, 0.25, 0.0], "huber_loss: dpred with delta=1",
            hint="differentiate each piece of l_delta (the linear pieces have a constant slope); keep the 1/S of the mean")
# delta = 2: per-element losses 0.125, 2, 4, 0 and slopes 0.5, -2, 2, 0
loss, dpred = huber_loss(pred, target, delta=2.0)
check_scalar(loss, 6.125 / 4, "huber_loss: loss with delta=2")
check_array(dpred, [0.125, -0.5, 0.5, 0.0], "huber_loss: dpred with delta=2")

rng_t = np.random.default_rng(13)
pred, target = 2 * rng_t.normal(size=(3, 4)), rng_t.normal(size=(3, 4))
_, dpred = huber_loss(pred, target, delta=0.7)
check_grad(dpred, numerical_grad(lambda _: huber_loss(pred, target, delta=0.7)[0], pred),
           "huber_loss: dpred (gradient check, delta=0.7)")
_, dpred32 = huber_loss(pred.astype(np.float32), target.astype(np.float32), delta=0.7)
assert isinstance(dpred32, np.ndarray) and dpred32.dtype == np.float32, (
    f"huber_loss: float32 inputs should give a float32 dpred, got {getattr(dpred32, 'dtype', type(dpred32).__name__)}; "
    "avoid creating float64 arrays and do not cast")
print("huber_loss: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(2003)
for _ in range(6):
    shape = tuple(int(v) for v in rng_t.integers(1, 6, size=int(rng_t.integers(1, 4))))
    delta = float(rng_t.uniform(0.2, 3.0))
    pred, target = rng_t.normal(size=shape) * 3, rng_t.normal(size=shape)
    p = torch.tensor(pred, requires_grad=True)
    expected = F.huber_loss(p, torch.from_numpy(target), delta=delta)
    expected.backward()
    loss, dpred = huber_loss(pred, target, delta=delta)
    assert isinstance(loss, float), f"huber_loss: the loss should be a Python float, got {type(loss).__name__}"
    check_scalar(loss, expected.item(), f"huber_loss: loss for shape {shape}, delta={delta:.3f}", rtol=1e-10, atol=1e-12)
    check_array(dpred, p.grad.numpy(), f"huber_loss: dpred for shape {shape}, delta={delta:.3f}", rtol=1e-10, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "md_softmax", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Softmax cross-entropy
#
# A classifier produces a row of unnormalised class scores (logits) $s_n \in \mathbb{R}^{C}$ per
# example, and $y_n \in \{0, \dots, C-1\}$ is the correct class. Softmax turns a row into
# probabilities, and the loss is the mean negative log-probability of the correct classes:
#
# $$
# p_{nk} = \frac{e^{s_{nk}}}{\sum_{j} e^{s_{nj}}}, \qquad
# L = -\frac{1}{N}\sum_{n=1}^{N} \log p_{n y_n}.
# $$
#
# **Gradient.** Derive it from one term written as
# $-\log p_{n y_n} = -s_{n y_n} + \log\sum_j e^{s_{nj}}$: differentiate each of the two parts with
# respect to $s_{nk}$ (for the log-sum-exp, the chain rule leads to a quantity defined above), and
# keep the $1/N$ of the mean. The gradient check in the visible tests tells you whether the
# derivation is right.
#
# **Numerical stability.** In float64, $e^{s}$ overflows to `inf` once $s > 709.78$, and scores
# in the hundreds do occur in a network that is training badly. Softmax does not change when the
# same constant is subtracted from a whole row, so subtract the row maximum
# $m_n = \max_j s_{nj}$ and compute log-probabilities directly:
#
# $$
# \log p_{nk} = (s_{nk} - m_n) - \log \sum_{j} e^{\,s_{nj} - m_n}.
# $$
#
# Now the largest exponential is $e^0 = 1$, so nothing overflows, and the sum is at least 1, so
# its log is finite. Entries that underflow to 0 are harmless. Do not compute $\log p$ as the log
# of the probabilities: a very unlikely class has $p = 0$ in floating point, and $\log 0 = -\infty$.
#
# **Sanity check.** When all scores are equal, $p_{nk} = 1/C$ and $L = \log C$ (for 10 classes,
# $\log 10 \approx 2.303$). An untrained classifier should start near this value, which makes it a
# useful first check of any new model.
#
# **Task.** Implement `softmax_cross_entropy(scores, y)`; no loop over the batch is needed. NumPy's
# integer-array indexing `a[np.arange(N), y]` picks one entry per row.

# %% nbgrader={"grade": false, "grade_id": "softmax_cross_entropy", "locked": false, "schema_version": 3, "solution": true, "task": false}
def softmax_cross_entropy(scores, y):
    """Mean softmax cross-entropy over the batch, computed stably.

    Parameters
    ----------
    scores : ndarray, shape (N, C)
        Class scores (logits), one row per example.
    y : ndarray of int, shape (N,)
        Correct class of each example, in 0..C-1.

    Returns
    -------
    loss : float
    dscores : ndarray, shape (N, C)
        dL/dscores.
    """
    ### BEGIN SOLUTION
    n = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = float(-log_probs[rows, y].mean())
    dscores = np.exp(log_probs)
    dscores[rows, y] -= 1.0
    dscores /= n
    ### END SOLUTION
    return loss, dscores


# %% nbgrader={"grade": true, "grade_id": "test_softmax_cross_entropy", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from nnkit.gradcheck import numerical_grad

# Equal scores: p = 1/3 everywhere, so each example contributes log 3.
loss, dscores = softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 2]))
assert isinstance(loss, float), f"softmax_cross_entropy: the loss should be a Python float, got {type(loss).__name__}"
check_scalar(loss, np.log(3.0), "softmax_cross_entropy: loss for equal scores", hint="should be log(C)")
check_array(dscores, np.array([[-2.0, 1.0, 1.0], [1.0, 1.0, -2.0]]) / 6.0, "softmax_cross_entropy: dscores for equal scores",
            hint="differentiate -s[y] + log(sum(exp(s))) with respect to every score of the row; keep the 1/N of the mean")

# Huge scores: softmax([1000, 1001, 1002]) = softmax([-2, -1, 0]).
loss, dscores = softmax_cross_entropy(np.array([[1000.0, 1001.0, 1002.0]]), np.array([2]))
p = np.exp([-2.0, -1.0, 0.0]) / np.exp([-2.0, -1.0, 0.0]).sum()
check_scalar(loss, np.log(1.0 + np.exp(-1.0) + np.exp(-2.0)), "softmax_cross_entropy: loss for scores near 1000",
             hint="subtract each row's maximum before exponentiating")
check_array(dscores, [[p[0], p[1], p[2] - 1.0]], "softmax_cross_entropy: dscores for scores near 1000",
            hint="subtract each row's maximum before exponentiating")
# A confident, wrong prediction: the loss is the score gap, 1000, not inf.
loss, dscores = softmax_cross_entropy(np.array([[1000.0, 0.0, -1000.0]]), np.array([1]))
check_scalar(loss, 1000.0, "softmax_cross_entropy: loss for a confident wrong prediction",
             hint="compute log-probabilities as shifted - log(sum(exp(shifted))), never log(p)")
check_array(dscores, [[1.0, -1.0, 0.0]], "softmax_cross_entropy: dscores for a confident wrong prediction")

rng_t = np.random.default_rng(14)
scores, y = rng_t.normal(size=(4, 5)), np.array([0, 3, 4, 3])
_, dscores = softmax_cross_entropy(scores, y)
check_grad(dscores, numerical_grad(lambda _: softmax_cross_entropy(scores, y)[0], scores),
           "softmax_cross_entropy: dscores (gradient check)")
print("softmax_cross_entropy: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(2004)
for scale in (1.0, 5.0, 300.0, 1e4):
    n, c = int(rng_t.integers(1, 9)), int(rng_t.integers(2, 11))
    scores = rng_t.normal(size=(n, c)) * scale
    y = rng_t.integers(0, c, size=n)
    s = torch.tensor(scores, requires_grad=True)
    expected = F.cross_entropy(s, torch.from_numpy(y))
    expected.backward()
    loss, dscores = softmax_cross_entropy(scores, y)
    assert isinstance(loss, float), f"softmax_cross_entropy: the loss should be a Python float, got {type(loss).__name__}"
    name = f"softmax_cross_entropy: N={n}, C={c}, scores of size ~{scale:g}"
    check_scalar(loss, expected.item(), f"{name}: loss", rtol=1e-9, atol=1e-12)
    check_array(dscores, s.grad.numpy(), f"{name}: dscores", rtol=1e-9, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "md_gradcheck", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. Numerical gradient checking
#
# An analytic gradient is checked against a numerical one. By Taylor's theorem,
#
# $$
# f(x \pm h) = f(x) \pm h f'(x) + \tfrac{h^2}{2} f''(x) \pm \tfrac{h^3}{6} f'''(x) + O(h^4),
# $$
#
# so the **forward difference** $\frac{f(x+h) - f(x)}{h} = f'(x) + \frac{h}{2}f''(x) + \dots$ has
# an error of order $h$, while in the **centered difference**
#
# $$
# \frac{f(x+h) - f(x-h)}{2h} = f'(x) + \frac{h^2}{6} f'''(x) + O(h^4)
# $$
#
# the even terms cancel and the error is of order $h^2$. A smaller $h$ is not always better: each
# value of $f$ carries a rounding error of up to about $u\lvert f\rvert$, where $u$ is the unit
# roundoff ($u = 2^{-53} \approx 1.1\times10^{-16}$ in float64; the chapter page uses the same
# symbol), and dividing the difference of two such values by $2h$ magnifies it to about
# $u\lvert f\rvert/h$. The total, $\approx h^2\lvert f'''\rvert/6 + u\lvert f\rvert/h$, is smallest
# near $h = (3u)^{1/3} \approx 7\times10^{-6}$, where it is of order $u^{2/3} \approx 2\times10^{-11}$
# (for $f$ and its derivatives of size 1). In float32 ($u = 2^{-24} \approx 6\times10^{-8}$) the
# best achievable error is of order $u^{2/3} \approx 10^{-5}$, too coarse to tell a correct
# gradient from a slightly wrong one: **always gradient-check in float64**.
#
# For a function of an array, perturb one coordinate at a time: $\partial f/\partial x_i \approx
# \big(f(x + h e_i) - f(x - h e_i)\big)/(2h)$. Two details matter in practice:
#
# * Perturb `x` **in place** and call `f(x)`. Checks are usually written as closures over arrays
#   they already hold, e.g. `lambda _: two_layer_loss(params, x, y)[0]` reads `params["W1"]`
#   itself; a perturbed copy would never be seen.
# * Afterwards, restore the **saved** original value: `x[i] + h - h` need not equal `x[i]` in
#   floating point.
#
# **Array-valued functions.** A backward pass receives the upstream gradient $G$ and returns the
# gradient of the scalar $\sum_k G_k\, f_k(x)$ with respect to $x$ (a vector-Jacobian product).
# So `numerical_gradient_array(f, x, dout)` is the numerical gradient of `np.sum(f(x) * dout)`.
#
# **Relative error.** A difference of $10^{-6}$ is tiny for gradients of size 100 and huge for
# gradients of size $10^{-6}$, so compare relative to the size of the values:
#
# $$
# \operatorname{rel}(a, b) = \max_i \frac{\lvert a_i - b_i\rvert}{\max\left(\lvert a_i\rvert + \lvert b_i\rvert,\ 10^{-12}\right)},
# $$
#
# where the floor avoids $0/0$ where both gradients are exactly zero. With float64 and
# $h = 10^{-5}$ (rules of thumb adapted from the CS231n notes, whose relative error divides by
# $\max(\lvert a_i\rvert, \lvert b_i\rvert)$ instead of the sum; the sum makes this course's value
# between $1/2$ and $1$ times theirs, a difference that does not move a value across these
# decades):
#
# * below $10^{-7}$: the gradient is correct (values around $10^{-9}$ to $10^{-11}$ are typical);
# * between $10^{-7}$ and $10^{-4}$: suspicious, unless a kink explains it (below), or the
#   function is a deep composition whose rounding errors add up;
# * above $10^{-4}$, and especially near $10^{-2}$ to $1$: the gradient is wrong.
#
# **Kinks.** ReLU, $\lvert\cdot\rvert$ and $\max$ are not differentiable everywhere. If some
# input lies within $h$ of a kink, the two evaluations straddle it and the numerical derivative
# mixes the two one-sided slopes: for $\max(0, x)$ with $\lvert x\rvert < h$ the centered
# difference is $(x + h)/(2h)$, anywhere between 0 and 1, and the plain average $\tfrac12$ only
# exactly at the kink. A correct analytic gradient then disagrees at that entry. Entries whose
# true gradient is nearly zero are fragile too: their numerical estimate is mostly rounding noise
# (around $10^{-11}$), so their relative error can be large although nothing is wrong. Before
# concluding that a gradient is wrong, look at *where* the error is.
#
# **Task.** Implement `numerical_gradient`, `numerical_gradient_array` and `relative_error`.
# Their tests use functions whose derivatives are known in closed form. From section 4 on you
# can use them to check anything you write.

# %% nbgrader={"grade": false, "grade_id": "gradcheck", "locked": false, "schema_version": 3, "solution": true, "task": false}
def numerical_gradient(f, x, h=1e-5):
    """Gradient of a scalar function f at x by centered differences.

    Parameters
    ----------
    f : callable
        f(x) returns a number. f may also ignore its argument and read x directly.
    x : ndarray (any shape), float64
        Perturbed in place, one entry at a time, and restored exactly.
    h : float
        Step size.

    Returns
    -------
    grad : ndarray, float64, shape of x
    """
    ### BEGIN SOLUTION
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + h
        f_plus = float(f(x))
        x[i] = saved - h
        f_minus = float(f(x))
        x[i] = saved
        grad[i] = (f_plus - f_minus) / (2.0 * h)
    ### END SOLUTION
    return grad


def numerical_gradient_array(f, x, dout, h=1e-5):
    """Numerical backward pass of an array-valued f: the gradient of sum(f(x) * dout) w.r.t. x.

    Parameters
    ----------
    f : callable returning an ndarray with the shape of dout
    x : ndarray, float64 (perturbed in place and restored)
    dout : ndarray, upstream gradient
    h : float

    Returns
    -------
    grad : ndarray, float64, shape of x
    """
    ### BEGIN SOLUTION
    grad = numerical_gradient(lambda z: np.sum(f(z) * dout), x, h)
    ### END SOLUTION
    return grad


def relative_error(a, b):
    """max over entries of |a - b| / max(|a| + |b|, 1e-12), as a float.

    a, b : ndarrays of the same shape
    """
    ### BEGIN SOLUTION
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    error = float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-12)))
    ### END SOLUTION
    return error


# %% nbgrader={"grade": false, "grade_id": "gradcheck_probe", "locked": true, "schema_version": 3, "solution": false, "task": false}
def probe_numerical_gradient(x, h):
    """Run numerical_gradient the way section 4 uses it: on a closure that ignores its argument
    and reads the array itself (here sum(x**3)). Returns (gradient, x afterwards), so that the
    tests can check the gradient and that every entry of x was restored exactly."""
    x = np.array(x, dtype=np.float64)
    grad = numerical_gradient(lambda _: float(np.sum(x ** 3)), x, h=h)
    return grad, x


# %% nbgrader={"grade": true, "grade_id": "test_numerical_gradient", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# d/dx x^3 = 3x^2. The centered difference of x^3 is exactly 3x^2 + h^2; a forward
# difference would be off by about 3xh.
x = np.array([1.0, 2.0])
grad = numerical_gradient(lambda z: np.sum(z ** 3), x, h=1e-3)
check_array(grad, [3.0 + 1e-6, 12.0 + 1e-6], "numerical_gradient: gradient of sum(x**3) with h=1e-3",
            rtol=0.0, atol=1e-9, dtype=np.float64,
            hint="use the centered difference (f(x + h) - f(x - h)) / (2h)")

# The same function as a closure that reads x itself, as in section 4: the probes must change
# x in place, and afterwards x must hold exactly its old values. In floating point,
# x + h - 2h + h is not x for 1.0, 2.0, 1.3 and 0.01, and x - h + h is not x for 0.01.
x_before = np.array([1.0, 2.0, 1.3, 0.01])
grad, x_after = probe_numerical_gradient(x_before, 1e-3)
check_array(grad, 3.0 * x_before ** 2 + 1e-6, "numerical_gradient: gradient of a closure over x (h=1e-3)",
            rtol=0.0, atol=1e-9, dtype=np.float64,
            hint="perturb x in place and call f(x): a function that reads x itself never sees a perturbed copy")
worst = int(np.argmax(np.abs(x_after - x_before)))
assert np.array_equal(x_after, x_before), (
    f"numerical_gradient: x was not restored exactly: largest difference "
    f"{abs(float(x_after[worst]) - float(x_before[worst]))!r} at index {worst} "
    f"({float(x_after[worst])!r} instead of {float(x_before[worst])!r}); "
    "put back the saved original value of each entry instead of adding and subtracting h")

# A 2-D x: every entry is probed, and the result has the shape of x.
x = np.array([[1.0, -2.0], [0.5, 3.0]])
grad = numerical_gradient(lambda z: np.sum(np.sin(z)), x)
check_array(grad, np.cos(x), "numerical_gradient: gradient of sum(sin(x)) for a (2, 2) x",
            rtol=1e-7, atol=1e-9, dtype=np.float64,
            hint="probe every entry (np.ndindex(x.shape) visits them all) and return an array shaped like x")
print("numerical_gradient: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(3001)
for _ in range(4):
    shape = tuple(int(v) for v in rng_t.integers(1, 4, size=int(rng_t.integers(1, 4))))
    x, c = rng_t.normal(size=shape), rng_t.normal(size=shape)
    x_before = x.copy()
    xt = torch.tensor(x, requires_grad=True)
    (torch.from_numpy(c) * torch.tanh(xt)).sum().backward()
    grad = numerical_gradient(lambda z: np.sum(c * np.tanh(z)), x)
    check_array(grad, xt.grad.numpy(), f"numerical_gradient: sum(c * tanh(x)) for shape {shape}",
                rtol=1e-6, atol=1e-9, dtype=np.float64)
    grad, x_after = probe_numerical_gradient(x_before, 1e-5)
    check_array(grad, 3.0 * x_before ** 2 + 1e-10, f"numerical_gradient: closure over x of shape {shape}",
                rtol=1e-7, atol=1e-9, dtype=np.float64)
    worst = np.unravel_index(int(np.argmax(np.abs(x_after - x_before))), shape)
    assert np.array_equal(x_after, x_before), (
        f"numerical_gradient: x of shape {shape} was not restored exactly: largest difference "
        f"{abs(float(x_after[worst]) - float(x_before[worst]))!r} at index {tuple(int(i) for i in worst)} "
        f"({float(x_after[worst])!r} instead of {float(x_before[worst])!r})")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_numerical_gradient_array", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# f(x) = x**2 elementwise: the backward pass is 2 * x * dout.
x = np.array([[1.0, 2.0], [3.0, 4.0]])
dout = np.array([[1.0, 0.0], [0.5, -1.0]])
grad = numerical_gradient_array(lambda z: z ** 2, x, dout)
check_array(grad, [[2.0, 0.0], [3.0, -8.0]], "numerical_gradient_array: f(x) = x**2",
            rtol=1e-7, atol=1e-9, dtype=np.float64, hint="the gradient of np.sum(f(x) * dout)")

# f(x) = x @ A: the backward pass is dout @ A.T.
A = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0]])
dout = np.array([[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]])
grad = numerical_gradient_array(lambda z: z @ A, x, dout)
check_array(grad, [[1.0, -2.0], [-2.0, -2.0]], "numerical_gradient_array: f(x) = x @ A",
            rtol=1e-7, atol=1e-9, dtype=np.float64, hint="the gradient of np.sum(f(x) * dout)")
print("numerical_gradient_array: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(3002)
for _ in range(4):
    n, d, m = (int(v) for v in rng_t.integers(1, 6, size=3))
    x, A, dout = rng_t.normal(size=(n, d)), rng_t.normal(size=(d, m)), rng_t.normal(size=(n, m))
    xt = torch.tensor(x, requires_grad=True)
    torch.tanh(xt @ torch.from_numpy(A)).backward(torch.from_numpy(dout))
    grad = numerical_gradient_array(lambda z: np.tanh(z @ A), x, dout)
    check_array(grad, xt.grad.numpy(), f"numerical_gradient_array: tanh(x @ A) for x {x.shape}, A {A.shape}",
                rtol=1e-6, atol=1e-9, dtype=np.float64)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_relative_error", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
err = relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
assert isinstance(err, float), f"relative_error: should return a Python float, got {type(err).__name__}"
check_scalar(err, 0.0, "relative_error of equal arrays")
check_scalar(relative_error(np.array([1.0, 0.0]), np.array([3.0, 0.0])), 0.5,
             "relative_error([1, 0], [3, 0])",
             hint="|1 - 3| / (1 + 3) = 0.5; where both entries are 0 the error is 0 (the 1e-12 floor)")
check_scalar(relative_error(np.array([1e-3]), np.array([-1e-3])), 1.0, "relative_error([1e-3], [-1e-3])",
             hint="opposite signs give the largest possible value, 1, whatever the scale")
check_scalar(relative_error(np.array([[100.0, 1.0]]), np.array([[101.0, 1.0]])), 1.0 / 201.0,
             "relative_error([[100, 1]], [[101, 1]])", hint="the maximum over the entries")
print("relative_error: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(3003)
for _ in range(5):
    shape = tuple(int(v) for v in rng_t.integers(1, 6, size=int(rng_t.integers(1, 4))))
    a = rng_t.normal(size=shape) * 10.0 ** rng_t.integers(-6, 4)
    b = a + rng_t.normal(size=shape) * 10.0 ** rng_t.integers(-9, 1)
    b.flat[0] = a.flat[0] = 0.0
    expected = float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-12)))
    check_scalar(relative_error(a, b), expected, f"relative_error for shape {shape}", rtol=1e-12, atol=0.0)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "md_planted_bug", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. Find the planted bug
#
# The cell below defines a two-layer classifier and its loss,
#
# $$
# a = xW_1 + b_1, \qquad h = \max(0, a), \qquad s = hW_2 + b_2, \qquad
# L = \text{softmax cross-entropy}(s, y),
# $$
#
# with its backward pass written out by hand. The loss and its gradient with respect to the scores
# come from `cross_entropy_and_grad`, which asks PyTorch for them, so that this section does not
# depend on your section 2; everything else is inline NumPy. The ReLU passes the gradient through
# where its input was positive: $\partial h_{ij}/\partial a_{ij} = \mathbb{1}[a_{ij} > 0]$
# (taking 0 at $a_{ij} = 0$, as PyTorch does).
#
# **One line of the backward pass is wrong.** The loss is right and every gradient has the
# right shape, so nothing crashes and a glance at the shapes shows nothing: this is the kind of bug
# only a gradient check finds. Find it with your checker: in a new cell, build a small float64
# problem (for example `params = init_two_layer_params(4, 6, 3, seed=1)` with 5 random inputs and
# labels), then compare each of the four gradients with
# `numerical_gradient(lambda _: two_layer_loss(params, x, y)[0], params[name])` using
# `relative_error`. The parameter whose error is far above the thresholds of section 3 tells you
# which part of the backward pass to re-derive.

# %% nbgrader={"grade": false, "grade_id": "two_layer_buggy", "locked": true, "schema_version": 3, "solution": false, "task": false}
def init_two_layer_params(D, H, C, seed=0):
    """Random float64 parameters: weights with standard deviation sqrt(2 / fan_in), small
    nonzero biases (so that no gradient check starts from a special point)."""
    gen = np.random.default_rng(seed)
    return {
        "W1": gen.normal(0.0, np.sqrt(2.0 / D), size=(D, H)),
        "b1": gen.normal(0.0, 0.1, size=H),
        "W2": gen.normal(0.0, np.sqrt(2.0 / H), size=(H, C)),
        "b2": gen.normal(0.0, 0.1, size=C),
    }


def cross_entropy_and_grad(scores, y):
    """Mean softmax cross-entropy of (N, C) float64 scores and its gradient, computed by PyTorch
    (F.cross_entropy and autograd). Returns (loss, dscores): a float and an (N, C) float64 array."""
    s = torch.tensor(scores, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(s, torch.as_tensor(y, dtype=torch.long))
    loss.backward()
    return loss.item(), s.grad.numpy()


def two_layer_loss(params, x, y):
    """Loss and gradients of affine - ReLU - affine - softmax cross-entropy.

    params : dict with "W1" (D, H), "b1" (H,), "W2" (H, C), "b2" (C,)
    x : (N, D) inputs; y : (N,) integer labels in 0..C-1
    Returns (loss, grads): loss a float, grads a dict with the keys and shapes of params.
    """
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    a = x @ W1 + b1
    h = np.maximum(a, 0.0)
    s = h @ W2 + b2
    loss, ds = cross_entropy_and_grad(s, y)

    grads = {}
    grads["W2"] = h.T @ ds
    grads["b2"] = ds.sum(axis=0)
    dh = ds @ W2.T
    da = dh * (a > 0)
    grads["W1"] = x.T @ da
    grads["b1"] = dh.sum(axis=0)
    return loss, grads


# %% [markdown] nbgrader={"grade": false, "grade_id": "md_fix", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Task.** Write `two_layer_loss_fixed`: the same network with the bug corrected (same
# arguments, same return format, and the loss still from `cross_entropy_and_grad`). The test
# checks all four gradients, with a numerical gradient and, hidden, against PyTorch's autograd on
# random networks.

# %% nbgrader={"grade": false, "grade_id": "two_layer_fixed", "locked": false, "schema_version": 3, "solution": true, "task": false}
def two_layer_loss_fixed(params, x, y):
    """Loss and correct gradients of affine - ReLU - affine - softmax cross-entropy.

    params : dict with "W1" (D, H), "b1" (H,), "W2" (H, C), "b2" (C,)
    x : (N, D) inputs; y : (N,) integer labels in 0..C-1
    Returns (loss, grads): loss a float, grads a dict with the keys and shapes of params.
    """
    ### BEGIN SOLUTION
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    a = x @ W1 + b1
    h = np.maximum(a, 0.0)
    s = h @ W2 + b2
    loss, ds = cross_entropy_and_grad(s, y)

    grads = {}
    grads["W2"] = h.T @ ds
    grads["b2"] = ds.sum(axis=0)
    dh = ds @ W2.T
    da = dh * (a > 0)
    grads["W1"] = x.T @ da
    grads["b1"] = da.sum(axis=0)
    ### END SOLUTION
    return loss, grads


# %% nbgrader={"grade": true, "grade_id": "test_two_layer_loss_fixed", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from nnkit.gradcheck import numerical_grad

rng_t = np.random.default_rng(15)
N, D, H, C = 5, 4, 6, 3
params = {"W1": rng_t.normal(0.0, 0.7, (D, H)), "b1": rng_t.normal(0.0, 0.1, H),
          "W2": rng_t.normal(0.0, 0.6, (H, C)), "b2": rng_t.normal(0.0, 0.1, C)}
x, y = rng_t.normal(size=(N, D)), rng_t.integers(0, C, size=N)
loss, grads = two_layer_loss_fixed(params, x, y)
assert isinstance(loss, float), f"two_layer_loss_fixed: the loss should be a Python float, got {type(loss).__name__}"
check_scalar(loss, two_layer_loss(params, x, y)[0], "two_layer_loss_fixed: loss",
             hint="the forward pass of the provided network is correct; keep it, with cross_entropy_and_grad")
assert isinstance(grads, dict) and set(grads) == set(params), (
    f"two_layer_loss_fixed: grads should be a dict with keys {sorted(params)}, got {grads!r:.200}")
for name in params:
    numeric = numerical_grad(lambda _: two_layer_loss_fixed(params, x, y)[0], params[name])
    check_grad(grads[name], numeric, f"two_layer_loss_fixed: grads['{name}'] (gradient check)",
               hint="re-derive this gradient by the chain rule, one step back from the loss at a time")

# With W2 = 0 and b2 = 0 every score is 0: the loss is log C, nothing reaches the first layer,
# and grads["b2"] = mean over the batch of (1/C - one_hot(y)).
zero_head = dict(params, W2=np.zeros((H, C)), b2=np.zeros(C))
loss, grads = two_layer_loss_fixed(zero_head, x, y)
check_scalar(loss, np.log(C), "two_layer_loss_fixed: loss with W2 = 0, b2 = 0")
check_array(grads["b2"], 1.0 / C - np.bincount(y, minlength=C) / N, "two_layer_loss_fixed: grads['b2'] with W2 = 0")
check_array(grads["W1"], np.zeros((D, H)), "two_layer_loss_fixed: grads['W1'] with W2 = 0")
check_array(grads["b1"], np.zeros(H), "two_layer_loss_fixed: grads['b1'] with W2 = 0")
print("two_layer_loss_fixed: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(4001)
for _ in range(4):
    N, D, H, C = (int(v) for v in rng_t.integers(2, 9, size=4))
    params = {"W1": rng_t.normal(size=(D, H)), "b1": rng_t.normal(size=H),
              "W2": rng_t.normal(size=(H, C)), "b2": rng_t.normal(size=C)}
    x, y = rng_t.normal(size=(N, D)), rng_t.integers(0, C, size=N)
    loss, grads = two_layer_loss_fixed(params, x, y)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    scores = torch.relu(torch.from_numpy(x) @ tp["W1"] + tp["b1"]) @ tp["W2"] + tp["b2"]
    expected = F.cross_entropy(scores, torch.from_numpy(y))
    expected.backward()
    sizes = f"N={N}, D={D}, H={H}, C={C}"
    check_scalar(loss, expected.item(), f"two_layer_loss_fixed: loss for {sizes}", rtol=1e-9, atol=1e-12)
    for name in params:
        check_array(grads[name], tp[name].grad.numpy(), f"two_layer_loss_fixed: grads['{name}'] for {sizes}",
                    rtol=1e-9, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "md_torch", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 5. The same network in PyTorch
#
# PyTorch's autograd records the operations applied to tensors created with
# `requires_grad=True`, and `loss.backward()` runs the same chain rule you just wrote by hand,
# leaving $\partial L/\partial t$ in `t.grad` for each such tensor.
#
# ### The model
#
# A PyTorch model is a subclass of `nn.Module`: layers assigned as attributes in `__init__` are
# registered, so `model.parameters()` finds their weights and `model.to(device)` moves them, and
# `forward` says how the layers are applied. Calling `model(x)` runs `forward`.
#
# Two conventions differ from the NumPy code above. `nn.Linear(D, H)` stores its weight with
# shape `(H, D)` (out_features, in_features) and computes $xW^{\top} + b$, so the NumPy `W1`
# corresponds to `fc1.weight.T`. And by default it draws weights and biases uniformly from
# $[-1/\sqrt{n_\text{in}},\ 1/\sqrt{n_\text{in}}]$, with $n_\text{in}$ its number of inputs
# (chapter 3 is about better choices).
#
# **Task.** Write `TwoLayerNet` yourself (it is a few lines, and every model in the later chapters
# is written the same way): `fc1 = nn.Linear(in_features, hidden)`, a ReLU, and
# `fc2 = nn.Linear(hidden, classes)`. Keep the names `fc1` and `fc2`: the tests load fixed
# weights into your model with `model.load_state_dict(...)`, whose keys are `"fc1.weight"`,
# `"fc1.bias"`, `"fc2.weight"` and `"fc2.bias"` (the helper `linear_init_state` below makes such
# a dict). `forward` returns raw scores (logits), not probabilities: `F.cross_entropy` applies a
# stable log-softmax itself, with the same row-max shift you wrote, and averages over the batch.

# %% nbgrader={"grade": false, "grade_id": "torch_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
class TwoLayerNet(nn.Module):
    """affine - ReLU - affine. forward maps inputs (N, in_features) to class scores (N, classes)."""

    def __init__(self, in_features, hidden, classes):
        super().__init__()
        ### BEGIN SOLUTION
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, classes)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.fc2(torch.relu(self.fc1(x)))
        ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "linear_init_state", "locked": true, "schema_version": 3, "solution": false, "task": false}
def linear_init_state(in_features, hidden, classes, seed):
    """Weights for TwoLayerNet drawn like nn.Linear's default, uniform in +-1/sqrt(fan_in), but
    from a seeded generator, as a dict for model.load_state_dict: every run that loads it
    starts from the same weights, whatever else has used the random number generator."""
    gen = torch.Generator().manual_seed(seed)

    def uniform(*shape, fan_in):
        return (2.0 * torch.rand(*shape, generator=gen) - 1.0) / fan_in ** 0.5

    return {
        "fc1.weight": uniform(hidden, in_features, fan_in=in_features),
        "fc1.bias": uniform(hidden, fan_in=in_features),
        "fc2.weight": uniform(classes, hidden, fan_in=hidden),
        "fc2.bias": uniform(classes, fan_in=hidden),
    }


# %% nbgrader={"grade": true, "grade_id": "test_two_layer_net", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
model = TwoLayerNet(2, 3, 2)
model.load_state_dict({
    "fc1.weight": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]),
    "fc1.bias": torch.tensor([0.0, 0.0, -1.0]),
    "fc2.weight": torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 2.0]]),
    "fc2.bias": torch.tensor([0.5, 0.0]),
})
# Row 0: fc1 gives (1, 2, -2), ReLU (1, 2, 0). Row 1: fc1 gives (-1, 3, -5), ReLU (0, 3, 0).
scores = model(torch.tensor([[1.0, 2.0], [-1.0, 3.0]]))
assert isinstance(scores, torch.Tensor), f"TwoLayerNet: forward should return a tensor, got {type(scores).__name__}"
check_array(scores.detach().cpu().numpy(), np.array([[3.5, -1.0], [3.5, -3.0]], dtype=np.float32),
            "TwoLayerNet: scores for fixed weights", hint="fc2(relu(fc1(x))): raw scores, no softmax")
scores = TwoLayerNet(40, 16, 10)(torch.zeros(5, 40))
assert tuple(scores.shape) == (5, 10), f"TwoLayerNet(40, 16, 10): scores should have shape (5, 10), got {tuple(scores.shape)}"
print("TwoLayerNet: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(4003)
for seed in range(3):
    n, d, h, c = (int(v) for v in rng_t.integers(1, 9, size=4))
    state = linear_init_state(d, h, c, seed=seed)
    model = TwoLayerNet(d, h, c)
    model.load_state_dict(state)
    x = torch.from_numpy(rng_t.normal(size=(n, d)).astype(np.float32))
    expected = F.linear(torch.relu(F.linear(x, state["fc1.weight"], state["fc1.bias"])),
                        state["fc2.weight"], state["fc2.bias"])
    check_array(model(x).detach().cpu().numpy(), expected.numpy(),
                f"TwoLayerNet({d}, {h}, {c}): scores for {n} inputs", rtol=1e-5, atol=1e-6)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "md_torch_gradients", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Gradients by autograd
#
# **Task.** Write `torch_gradients(params, x, y)`: put the NumPy parameters into float64 tensors
# that require gradients, compute the loss of the two-layer network with tensor operations (or
# load them into a `TwoLayerNet` converted with `.double()`, minding the transposes), call
# `backward()`, and return the gradients as a dict of float64 NumPy arrays with the NumPy shapes
# (`t.grad.detach().cpu().numpy()`). The test compares them with a numerical gradient of the
# same loss that it computes itself.

# %% nbgrader={"grade": false, "grade_id": "torch_gradients", "locked": false, "schema_version": 3, "solution": true, "task": false}
def torch_gradients(params, x, y):
    """Gradients of the two-layer loss computed by PyTorch autograd.

    params : dict of float64 ndarrays "W1" (D, H), "b1" (H,), "W2" (H, C), "b2" (C,)
    x : (N, D) float64 ndarray; y : (N,) integer ndarray
    Returns a dict with the same keys: float64 ndarrays of the shapes in params.
    """
    ### BEGIN SOLUTION
    tensors = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
               for name, value in params.items()}
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.long)
    hidden = torch.relu(xt @ tensors["W1"] + tensors["b1"])
    scores = hidden @ tensors["W2"] + tensors["b2"]
    F.cross_entropy(scores, yt).backward()
    grads = {name: t.grad.detach().cpu().numpy() for name, t in tensors.items()}
    ### END SOLUTION
    return grads


# %% nbgrader={"grade": true, "grade_id": "test_torch_gradients", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from nnkit.gradcheck import numerical_grad

rng_t = np.random.default_rng(16)
N, D, H, C = 6, 4, 5, 3
params = {"W1": rng_t.normal(0.0, 0.7, (D, H)), "b1": rng_t.normal(0.0, 0.1, H),
          "W2": rng_t.normal(0.0, 0.6, (H, C)), "b2": rng_t.normal(0.0, 0.1, C)}
x, y = rng_t.normal(size=(N, D)), rng_t.integers(0, C, size=N)
grads = torch_gradients(params, x, y)
assert isinstance(grads, dict) and set(grads) == set(params), (
    f"torch_gradients: should return a dict with keys {sorted(params)}, got {grads!r:.200}")


def reference_loss(_):
    """The two-layer loss for the current params, computed here without autograd."""
    t = {k: torch.from_numpy(v) for k, v in params.items()}
    scores = torch.relu(torch.from_numpy(x) @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"]
    return F.cross_entropy(scores, torch.from_numpy(y)).item()


for name in params:
    got = grads[name]
    assert isinstance(got, np.ndarray), (
        f"torch_gradients: ['{name}'] should be a NumPy array, got {type(got).__name__}; "
        "use t.grad.detach().cpu().numpy()")
    assert got.shape == params[name].shape, (
        f"torch_gradients: ['{name}'] has shape {got.shape}, the parameter has shape {params[name].shape}; "
        "an nn.Linear weight is the transpose of the NumPy matrix")
    assert got.dtype == np.float64, (
        f"torch_gradients: ['{name}'] has dtype {got.dtype}; use float64 tensors")
    check_array(got, numerical_grad(reference_loss, params[name]),
                f"torch_gradients: ['{name}'] against a numerical gradient", rtol=1e-6, atol=1e-8,
                hint="the loss is F.cross_entropy (mean over the batch) of the raw scores relu(x @ W1 + b1) @ W2 + b2")
print("torch_gradients: visible checks passed")
### BEGIN HIDDEN TESTS
from nnkit.gradcheck import numerical_grad

rng_t = np.random.default_rng(4002)
for _ in range(3):
    N, D, H, C = (int(v) for v in rng_t.integers(2, 8, size=4))
    params = {"W1": rng_t.normal(size=(D, H)), "b1": rng_t.normal(size=H),
              "W2": rng_t.normal(size=(H, C)), "b2": rng_t.normal(size=C)}
    x, y = rng_t.normal(size=(N, D)), rng_t.integers(0, C, size=N)
    grads = torch_gradients(params, x, y)

    def loss_value(_):
        t = {k: torch.from_numpy(v) for k, v in params.items()}
        scores = torch.relu(torch.from_numpy(x) @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"]
        return F.cross_entropy(scores, torch.from_numpy(y)).item()

    for name in params:
        # absolute tolerance too: an entry whose gradient is nearly 0 has a numerical estimate
        # made of rounding noise, and an elementwise relative error would blow it up
        check_array(grads[name], numerical_grad(loss_value, params[name]),
                    f"torch_gradients: ['{name}'] for N={N}, D={D}, H={H}, C={C}",
                    rtol=1e-6, atol=1e-8, dtype=np.float64)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "md_train", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### The training loop
#
# Minibatch stochastic gradient descent: shuffle the training set, cut it into batches, and for
# each batch compute the loss, the gradients, and the update $\theta \leftarrow \theta - \eta\,
# \nabla_\theta L_{\text{batch}}$. One pass over the data is an epoch. The same loop, grown a few
# lines at a time, trains every model in the later chapters.
#
# **Task.** Write `train(model, x_train, y_train, device, epochs, lr, batch_size, seed)`:
#
# * train on `device`, whatever it is: it comes from `nnkit.pick_device()`, which is a GPU where
#   there is one and the CPU otherwise. Convert the data to tensors (`float32` inputs, `int64`
#   labels);
# * make one `torch.Generator().manual_seed(seed)` before the first epoch and draw a fresh order
#   from it each epoch with `torch.randperm(N, generator=...)`, so that runs are reproducible
#   (the hidden tests replay your loop with exactly this order);
# * batches of `batch_size` consecutive examples of that order (the last one may be smaller); loss
#   `F.cross_entropy`; update with `torch.optim.SGD(model.parameters(), lr=lr)` (plain SGD, no
#   momentum); clear the old gradients before each `backward()`, since PyTorch *adds* new
#   gradients to `.grad`;
# * return a list of `epochs` Python floats: each epoch's mean loss per example, i.e. each
#   batch's loss weighted by its size. These are measured while the weights change, so they lag a
#   little behind the loss at the end of the epoch.
#
# Two habits pay off on a GPU, though the tests cannot see them: move the model once and keep the
# data on the CPU, moving one batch at a time (GPU memory stays small); and sum the losses in a
# tensor on the device, calling `.item()` once per epoch, since `.item()` waits for the GPU to
# finish its queued work.
#
# The tests train a network of their own (`train_reference_net` below, the same architecture
# as `TwoLayerNet` built from `nn.Sequential`), so that their result depends on `train` alone.

# %% nbgrader={"grade": false, "grade_id": "train", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train(model, x_train, y_train, device, epochs, lr, batch_size, seed):
    """Train model with minibatch SGD on softmax cross-entropy.

    model : torch.nn.Module mapping (B, D) inputs to (B, C) scores
    x_train : (N, D) float32 ndarray; y_train : (N,) int64 ndarray
    device : torch.device; epochs, batch_size, seed : int; lr : float
    Returns a list of `epochs` floats: the mean loss per example of each epoch.
    """
    ### BEGIN SOLUTION
    model.to(device)
    model.train()
    x_all = torch.as_tensor(x_train, dtype=torch.float32)
    y_all = torch.as_tensor(y_train, dtype=torch.long)
    n = len(x_all)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        total = torch.zeros((), device=device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x_all[idx].to(device), y_all[idx].to(device)
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        losses.append(total.item() / n)
    ### END SOLUTION
    return losses


# %% nbgrader={"grade": false, "grade_id": "train_driver", "locked": true, "schema_version": 3, "solution": false, "task": false}
def train_reference_net(state, x_train, y_train, x_eval, epochs, lr, batch_size, seed):
    """Train an affine - ReLU - affine nn.Sequential that starts from the weights in state (keys
    as for TwoLayerNet) with your train on nnkit.pick_device(). Returns (losses, scores): what
    train returned, and the trained network's float32 scores for x_eval."""
    hidden, in_features = state["fc1.weight"].shape
    net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, state["fc2.weight"].shape[0]))
    net.load_state_dict({"0.weight": state["fc1.weight"], "0.bias": state["fc1.bias"],
                         "2.weight": state["fc2.weight"], "2.bias": state["fc2.bias"]})
    losses = train(net, x_train, y_train, nnkit.pick_device(), epochs, lr, batch_size, seed)
    net.cpu()
    with torch.no_grad():
        scores = net(torch.as_tensor(x_eval, dtype=torch.float32)).numpy()
    return losses, scores


# %% nbgrader={"grade": true, "grade_id": "test_train_small", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
x = np.array([[2.0, 0.0, 0.0, 1.0], [0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 2.0, 1.0],
              [1.5, 0.2, 0.0, 1.0], [0.0, 1.5, 0.3, 1.0], [0.2, 0.0, 1.5, 1.0]], dtype=np.float32)
y = np.array([0, 1, 2, 0, 1, 2])

# A zero last layer gives equal scores, so the first full-batch loss is log 3.
state = linear_init_state(4, 8, 3, seed=3)
state["fc2.weight"], state["fc2.bias"] = torch.zeros(3, 8), torch.zeros(3)
losses, _ = train_reference_net(state, x, y, x, epochs=30, lr=0.5, batch_size=6, seed=0)
assert isinstance(losses, list) and len(losses) == 30, (
    f"train: should return a list with one loss per epoch (30), got {type(losses).__name__} "
    f"of length {len(losses) if isinstance(losses, (list, tuple)) else '?'}")
assert all(isinstance(v, float) for v in losses), (
    f"train: the losses should be Python floats (use .item()), got {sorted({type(v).__name__ for v in losses})}")
check_scalar(losses[0], np.log(3.0), "train: first epoch loss with a zero last layer", rtol=1e-5,
             hint="the loss of each batch is measured before that batch's update")
assert losses[-1] < 0.5 * losses[0], (
    f"train: the loss went from {losses[0]:.4f} to {losses[-1]:.4f} in 30 full-batch epochs; "
    "on this separable toy set it should at least halve. Check the update and zero_grad")

# lr = 0 freezes the model: with batches of 4 and 2 examples, every epoch's mean loss must be
# the full-data loss, which holds only if each batch loss is weighted by its size.
state = linear_init_state(4, 8, 3, seed=4)
hidden = torch.relu(F.linear(torch.from_numpy(x), state["fc1.weight"], state["fc1.bias"]))
full_loss = F.cross_entropy(F.linear(hidden, state["fc2.weight"], state["fc2.bias"]), torch.from_numpy(y)).item()
losses, _ = train_reference_net(state, x, y, x, epochs=2, lr=0.0, batch_size=4, seed=0)
check_close(losses, [full_loss, full_loss], "train: per-epoch losses with lr=0 and batches of 4 and 2", rtol=1e-5,
            hint="weight each batch's mean loss by its number of examples, then divide by N")

# The same seed gives the same run.
runs = [train_reference_net(state, x, y, x, epochs=3, lr=0.3, batch_size=4, seed=5)[0] for _ in range(2)]
assert runs[0] == runs[1], (
    f"train: two runs with seed=5 gave different losses, {runs[0]} and {runs[1]}; "
    "draw each epoch's order from one torch.Generator seeded with seed")
print("train (small cases): visible checks passed")
### BEGIN HIDDEN TESTS
def replay_sgd(state, x, y, epochs, lr, batch_size, seed):
    """Minibatch SGD as the task describes it, step by step: (per-epoch losses, final scores)."""
    w = [state[k].clone().requires_grad_(True) for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            loss = F.cross_entropy(F.linear(torch.relu(F.linear(xt[idx], w[0], w[1])), w[2], w[3]), yt[idx])
            total += loss.item() * len(idx)
            step = torch.autograd.grad(loss, w)
            with torch.no_grad():
                for p, g in zip(w, step):
                    p -= lr * g
        losses.append(total / len(x))
    with torch.no_grad():
        scores = F.linear(torch.relu(F.linear(xt, w[0], w[1])), w[2], w[3]).numpy()
    return losses, scores


rng_t = np.random.default_rng(5001)
for N, D, H, C, lr, batch_size, seed in ((10, 5, 7, 3, 0.3, 10, 1), (11, 4, 6, 3, 0.2, 4, 7), (9, 3, 5, 4, 0.4, 2, 2)):
    x = rng_t.normal(size=(N, D)).astype(np.float32)
    y = rng_t.integers(0, C, size=N)
    state = linear_init_state(D, H, C, seed=11 + seed)
    expected_losses, expected_scores = replay_sgd(state, x, y, 3, lr, batch_size, seed)
    losses, scores = train_reference_net(state, x, y, x, epochs=3, lr=lr, batch_size=batch_size, seed=seed)
    setting = f"N={N}, batch_size={batch_size}, lr={lr}, seed={seed}"
    check_close(losses, expected_losses, f"train: epoch losses against a replay of minibatch SGD ({setting})",
                rtol=1e-5, atol=1e-6)
    check_array(scores, expected_scores, f"train: scores after three epochs ({setting})", rtol=1e-4, atol=1e-5)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_train_mnist1d", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import time
from nnkit.data import load_mnist1d

x_train, y_train, x_test, y_test = load_mnist1d()
start = time.perf_counter()
losses, scores = train_reference_net(linear_init_state(40, 128, 10, seed=0), x_train, y_train, x_test,
                                     epochs=20, lr=0.1, batch_size=32, seed=0)
seconds = time.perf_counter() - start
accuracy = float(np.mean(scores.argmax(axis=1) == y_test))
print(f"MNIST-1D on {nnkit.pick_device()}: loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
      f"test accuracy {accuracy:.3f}, {seconds:.1f} s")
assert len(losses) == 20, f"train: expected 20 epoch losses, got {len(losses)}"
assert np.all(np.isfinite(losses)), f"train: the loss is not finite: {losses}"
assert losses[-1] < 0.7 * losses[0], (
    f"train: the epoch loss only went from {losses[0]:.3f} to {losses[-1]:.3f}; a correct loop reaches "
    "about 0.8 from about 1.9")
assert accuracy > 0.45, (
    f"train: test accuracy {accuracy:.3f} is too low; a correct loop reaches about 0.57 to 0.61 here "
    "(chance is 0.10)")

# %% [markdown] nbgrader={"grade": false, "grade_id": "md_end", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## What you have now
#
# An affine layer and five losses with gradients you have verified, a gradient checker you trust
# because it was tested on functions with known derivatives, the habit of checking every backward
# pass before training with it, and a device-agnostic training loop. From chapter 1 on, the test
# cells check your backward passes with `nnkit.gradcheck`, which implements the same algorithm as
# your `numerical_gradient`.
