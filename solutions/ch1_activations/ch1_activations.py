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
# # Exercise 1: Activation functions
#
# In this exercise you implement the common activation functions as NumPy layers, each with its
# backward pass, and then watch one of them (ReLU) misbehave inside a real PyTorch training run.
#
# 1. **Forward and backward passes** for sigmoid, tanh, ReLU, Leaky ReLU, PReLU, ELU and Maxout.
# 2. **Dead units**: measure the fraction of ReLU units that output zero for a whole batch.
# 3. **PyTorch**: record that fraction with forward hooks, train an MLP on MNIST-1D, and watch a too-high
#    learning rate kill ReLUs.
#
# Every layer follows the convention of chapter 0:
#
# * `*_forward(x, ...)` returns `(out, cache)`, where `cache` holds whatever the backward pass needs;
# * `*_backward(dout, cache)` receives the upstream gradient $\partial L/\partial \text{out}$ (same
#   shape as `out`) and returns the gradient of the loss with respect to each input of the forward pass.
#
# Write vectorized code: no Python loop over examples or features. Keep the input's dtype: for the
# elementwise functions (sigmoid, tanh, ReLU, Leaky ReLU, ELU), a `float32` input gives a `float32` output and
# a `float32` gradient (the gradient checks run in `float64`). Each graded cell shows some of its tests; more
# tests, with random shapes and values compared against PyTorch, run when your notebook is graded. The cells
# tagged `optional` (a comparison table and figures at the end) are not graded; nothing else depends on them.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import nnkit
from nnkit.gradcheck import numerical_grad_array, rel_error
from nnkit.testing import check_array, check_grad, check_scalar

np.set_printoptions(precision=4, suppress=True)
# The networks in this exercise are tiny: on a CPU, one thread is as fast as several, and on a busy
# machine (a shared JupyterHub, a grader running notebooks side by side) several threads waiting on
# each other can make training ten times slower. A GPU is unaffected.
torch.set_num_threads(1)
print("torch", torch.__version__, "| device for training:", nnkit.pick_device())


# %% [markdown] nbgrader={"grade": false, "grade_id": "gradcheck_intro", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## How your backward passes are checked
#
# `nnkit.gradcheck.numerical_grad_array(f, x, dout)` estimates the gradient of
# $g(x) = \sum f(x) \odot \text{dout}$ (the quantity whose gradient a backward pass computes) by centered
# differences, $\frac{\partial g}{\partial x_i} \approx \frac{g(x + h e_i) - g(x - h e_i)}{2h}$ with $h = 10^{-5}$,
# and `check_grad` compares it with your analytic gradient by relative error. In `float64` a correct
# backward pass gives a relative error around $10^{-9}$ or smaller; the tests accept anything below
# $10^{-7}$.
#
# Centered differences assume the function is smooth between $x - h$ and $x + h$. Several
# activations have a **kink** at $0$ (ReLU, Leaky ReLU, PReLU, and ELU when $\alpha \ne 1$), and Maxout
# has one wherever its two pieces tie. Probing within $h$ of a kink averages the two slopes and
# the check fails even for a correct backward pass, so the gradient checks below draw their inputs
# away from the kinks.

# %% [markdown] nbgrader={"grade": false, "grade_id": "sigmoid_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. Sigmoid
#
# $$\sigma(x) = \frac{1}{1 + e^{-x}}.$$
#
# The outputs lie in $(0, 1)$, so they are always positive (not zero-centered). Derive $d\sigma/dx$ yourself:
# it can be written in terms of $\sigma(x)$ alone, so the backward pass can reuse the forward output (cache
# that). The derivative is largest at $x = 0$ and vanishes as $|x|$ grows: a *saturated* unit passes almost
# no gradient back. The gradient check in the test cell tells you whether your derivative is right.
#
# **Numerical stability.** For $x = -1000$ the formula above computes $e^{1000}$, which overflows. Your
# `sigmoid_forward` must not overflow (nor warn) for any finite input. The exponential only overflows for a
# large *positive* argument: for $x \ge 0$ the formula above is safe; for $x < 0$, find an equivalent form of
# $\sigma(x)$ that never exponentiates a large positive number.

# %% nbgrader={"grade": false, "grade_id": "sigmoid_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sigmoid_forward(x):
    """Logistic sigmoid, elementwise and numerically stable.

    x: array of any shape.
    Returns (out, cache): out has x's shape and dtype, values in [0, 1].
    """
    ### BEGIN SOLUTION
    out = np.empty_like(x)
    pos = x >= 0
    # Each branch only ever exponentiates a non-positive number, so nothing overflows.
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    cache = out
    ### END SOLUTION
    return out, cache


def sigmoid_backward(dout, cache):
    """dout: upstream gradient, shape of out. Returns dx, shape of x."""
    ### BEGIN SOLUTION
    out = cache
    dx = dout * out * (1.0 - out)
    ### END SOLUTION
    return dx


# %% nbgrader={"grade": true, "grade_id": "test_sigmoid", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_array, check_grad

# Fixed case: sigma(ln 3) = 3/4, sigma(-ln 3) = 1/4, derivative sigma * (1 - sigma).
x = np.array([[0.0, np.log(3.0), -np.log(3.0)]])
out, cache = sigmoid_forward(x)
check_array(out, np.array([[0.5, 0.75, 0.25]]), "sigmoid_forward(x)", dtype=np.float64)
dx = sigmoid_backward(np.array([[1.0, 2.0, -1.0]]), cache)
check_array(dx, np.array([[0.25, 2 * 0.1875, -0.1875]]), "sigmoid_backward dx", dtype=np.float64,
            hint="dx is dout times d(sigma)/dx; derive it from the definition and express it through the output")

# Stability: no overflow at +-1000 (np.errstate turns a silent overflow into an error).
x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
try:
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, _ = sigmoid_forward(x)
except FloatingPointError as err:
    raise AssertionError(f"sigmoid_forward overflows for large |x| ({err}). Hint: exp overflows for a large "
                         "positive argument; for x < 0, which form of the sigmoid never exponentiates a "
                         "large positive number?") from None
check_array(out, np.array([0.0, np.exp(-50.0), 0.5, 1.0, 1.0]), "sigmoid_forward at +-1000",
            rtol=1e-9, atol=1e-300)

# Gradient check: sigmoid is smooth, so any inputs will do.
rng = np.random.default_rng(0)
x = rng.normal(size=(4, 5)) * 3
dout = rng.normal(size=(4, 5))
_, cache = sigmoid_forward(x)
check_grad(sigmoid_backward(dout, cache), numerical_grad_array(lambda z: sigmoid_forward(z)[0], x, dout),
           "sigmoid_backward dx")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(101)
for shape in [(7,), (3, 11), (2, 4, 6)]:
    x = rng.normal(size=shape) * rng.uniform(1, 20)
    dout = rng.normal(size=shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.sigmoid(xt)
    yt.backward(torch.tensor(dout))
    out, cache = sigmoid_forward(x)
    check_array(out, yt.detach().numpy(), f"sigmoid_forward on shape {shape}", rtol=1e-10, atol=1e-14,
                dtype=np.float64)
    check_array(sigmoid_backward(dout, cache), xt.grad.numpy(), f"sigmoid_backward on shape {shape}",
                rtol=1e-10, atol=1e-14, dtype=np.float64)
x32 = rng.normal(size=(5, 3)).astype(np.float32) * 100
dout32 = rng.normal(size=(5, 3)).astype(np.float32)
out, cache = sigmoid_forward(x32)
check_array(out, torch.sigmoid(torch.from_numpy(x32)).numpy(), "sigmoid_forward on float32 input",
            rtol=1e-5, atol=1e-6, dtype=np.float32, hint="keep the input's dtype")
s32 = torch.sigmoid(torch.from_numpy(x32).double()).numpy()
check_array(sigmoid_backward(dout32, cache), dout32 * s32 * (1 - s32), "sigmoid_backward on float32 input",
            rtol=1e-4, atol=1e-6, dtype=np.float32, hint="keep the input's dtype")
### END HIDDEN TESTS
print("sigmoid: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "tanh_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. Tanh
#
# $$\tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}} = 2\sigma(2x) - 1.$$
#
# Tanh is a rescaled sigmoid: zero-centered, with outputs in $(-1, 1)$ and a slope of $1$ at the origin,
# but it saturates just the same. `np.tanh` is already stable for large $|x|$. As for the sigmoid, its
# derivative can be written through the output alone.

# %% nbgrader={"grade": false, "grade_id": "tanh_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def tanh_forward(x):
    """Hyperbolic tangent, elementwise. x: any shape. Returns (out, cache), out of x's shape."""
    ### BEGIN SOLUTION
    out = np.tanh(x)
    cache = out
    ### END SOLUTION
    return out, cache


def tanh_backward(dout, cache):
    """dout: upstream gradient, shape of out. Returns dx, shape of x."""
    ### BEGIN SOLUTION
    dx = dout * (1.0 - cache ** 2)
    ### END SOLUTION
    return dx


# %% nbgrader={"grade": true, "grade_id": "test_tanh", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_array, check_grad

# Fixed case: tanh(ln 2) = (4 - 1) / (4 + 1) = 0.6, derivative 1 - 0.36 = 0.64.
x = np.array([0.0, np.log(2.0), -np.log(2.0)])
out, cache = tanh_forward(x)
check_array(out, np.array([0.0, 0.6, -0.6]), "tanh_forward(x)", dtype=np.float64)
check_array(tanh_backward(np.array([1.0, 1.0, 3.0]), cache), np.array([1.0, 0.64, 1.92]),
            "tanh_backward dx", dtype=np.float64, hint="dx is dout times d(tanh)/dx, written through the output")

rng = np.random.default_rng(1)
x = rng.normal(size=(3, 6)) * 2
dout = rng.normal(size=(3, 6))
_, cache = tanh_forward(x)
check_grad(tanh_backward(dout, cache), numerical_grad_array(lambda z: tanh_forward(z)[0], x, dout),
           "tanh_backward dx")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(102)
for shape in [(9,), (5, 2), (3, 4, 2)]:
    x = rng.normal(size=shape) * rng.uniform(1, 10)
    dout = rng.normal(size=shape)
    xt = torch.tensor(x, requires_grad=True)
    torch.tanh(xt).backward(torch.tensor(dout))
    out, cache = tanh_forward(x)
    check_array(out, np.tanh(x), f"tanh_forward on shape {shape}", rtol=1e-12, atol=1e-14, dtype=np.float64)
    check_array(tanh_backward(dout, cache), xt.grad.numpy(), f"tanh_backward on shape {shape}",
                rtol=1e-10, atol=1e-14, dtype=np.float64)
x32, dout32 = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
out, cache = tanh_forward(x32)
check_array(out, np.tanh(x32), "tanh_forward on float32 input", rtol=1e-5, atol=1e-6, dtype=np.float32,
            hint="keep the input's dtype")
check_array(tanh_backward(dout32, cache), dout32 / np.cosh(x32.astype(np.float64)) ** 2,
            "tanh_backward on float32 input", rtol=1e-4, atol=1e-6, dtype=np.float32, hint="keep the input's dtype")
### END HIDDEN TESTS
print("tanh: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "relu_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. ReLU, Leaky ReLU and PReLU
#
# These three are piecewise linear with a kink at $0$:
#
# | | forward |
# |---|---|
# | ReLU | $\max(0, x)$ |
# | Leaky ReLU (Maas et al., 2013) | $x$ if $x > 0$, else $\alpha x$ (default $\alpha = 0.01$) |
# | PReLU (He et al., 2015) | $\text{out}_{nd} = x_{nd}$ if $x_{nd} > 0$, else $\alpha_d\, x_{nd}$ |
#
# **The value at the kink.** None of them is differentiable at $x = 0$; any slope between the left and right
# derivative is a valid *subgradient*. We use the same convention as PyTorch: **at exactly $0$, take the
# slope of the negative side**. Write the test for the positive branch as `x > 0`, not `x >= 0`.
#
# **PReLU** learns its slope: here `x` has shape `(N, D)` and `alpha` has shape `(D,)`, one slope per feature
# (in convolutional layers He et al. learn one slope per channel, or a single slope for the whole layer).
# Every example $n$ uses the same $\alpha_d$ in column $d$. `prelu_backward` returns the gradient of the loss
# with respect to both inputs of the forward pass, `x` and `alpha`: differentiate the definition in the
# table, and let the gradient check in the test cell tell you whether you got it right. Nothing keeps a
# learned $\alpha_d$ positive: training can drive it to $0$, where the negative side is as flat as ReLU's, or
# below.
#
# (The form $\max(x, \alpha x)$ you may see for Leaky ReLU equals the definition above for every $\alpha \le 1$,
# negative $\alpha$ included, and differs from it for $\alpha > 1$.)

# %% nbgrader={"grade": false, "grade_id": "relu_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relu_forward(x):
    """ReLU, elementwise. x: any shape. Returns (out, cache), out of x's shape and dtype."""
    ### BEGIN SOLUTION
    out = np.maximum(x, 0)
    cache = x
    ### END SOLUTION
    return out, cache


def relu_backward(dout, cache):
    """dout: upstream gradient, shape of out. Returns dx (gradient 0 where x <= 0)."""
    ### BEGIN SOLUTION
    x = cache
    dx = dout * (x > 0)
    ### END SOLUTION
    return dx


def leaky_relu_forward(x, alpha=0.01):
    """Leaky ReLU with negative slope alpha (a float). x: any shape. Returns (out, cache)."""
    ### BEGIN SOLUTION
    out = np.where(x > 0, x, alpha * x)
    cache = (x, alpha)
    ### END SOLUTION
    return out, cache


def leaky_relu_backward(dout, cache):
    """dout: upstream gradient, shape of out. Returns dx (slope alpha where x <= 0)."""
    ### BEGIN SOLUTION
    x, alpha = cache
    dx = np.where(x > 0, dout, alpha * dout)  # keeps dout's dtype
    ### END SOLUTION
    return dx


def prelu_forward(x, alpha):
    """PReLU with one learned slope per feature.

    x: (N, D); alpha: (D,).
    Returns (out, cache), out of shape (N, D).
    """
    ### BEGIN SOLUTION
    out = np.where(x > 0, x, alpha * x)
    cache = (x, alpha)
    ### END SOLUTION
    return out, cache


def prelu_backward(dout, cache):
    """dout: (N, D). Returns (dx, dalpha) with shapes (N, D) and (D,)."""
    ### BEGIN SOLUTION
    x, alpha = cache
    positive = x > 0
    dx = dout * np.where(positive, 1.0, alpha)
    dalpha = np.sum(dout * np.where(positive, 0.0, x), axis=0)
    ### END SOLUTION
    return dx, dalpha


# %% nbgrader={"grade": true, "grade_id": "test_relu", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
import torch.nn.functional as F
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_array, check_grad

x = np.array([[-2.0, 0.0, 3.0], [1.5, -0.5, 0.0]])
out, cache = relu_forward(x)
check_array(out, np.array([[0.0, 0.0, 3.0], [1.5, 0.0, 0.0]]), "relu_forward(x)", dtype=np.float64)
dx = relu_backward(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), cache)
check_array(dx, np.array([[0.0, 0.0, 3.0], [4.0, 0.0, 0.0]]), "relu_backward dx", dtype=np.float64,
            hint="at x == 0 exactly, use the slope of the negative side (PyTorch's convention)")

# Gradient check with |x| >= 0.1: a probe of +-1e-5 never crosses the kink at 0.
rng = np.random.default_rng(2)
x = rng.uniform(0.1, 2.0, size=(4, 5)) * rng.choice([-1.0, 1.0], size=(4, 5))
dout = rng.normal(size=(4, 5))
_, cache = relu_forward(x)
check_grad(relu_backward(dout, cache), numerical_grad_array(lambda z: relu_forward(z)[0], x, dout),
           "relu_backward dx")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(103)
for shape in [(8,), (6, 3), (2, 3, 5)]:
    x = rng.normal(size=shape)
    x[rng.random(shape) < 0.2] = 0.0  # exact zeros check the convention at the kink
    dout = rng.normal(size=shape)
    xt = torch.tensor(x, requires_grad=True)
    F.relu(xt).backward(torch.tensor(dout))
    out, cache = relu_forward(x)
    check_array(out, np.maximum(x, 0.0), f"relu_forward on shape {shape}", dtype=np.float64)
    check_array(relu_backward(dout, cache), xt.grad.numpy(), f"relu_backward on shape {shape}",
                dtype=np.float64, hint="PyTorch passes gradient 0 at x == 0")
x32, dout32 = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
out, cache = relu_forward(x32)
check_array(out, np.maximum(x32, 0), "relu_forward on float32 input", dtype=np.float32, hint="keep the input's dtype")
check_array(relu_backward(dout32, cache), np.where(x32 > 0, dout32, 0), "relu_backward on float32 input",
            dtype=np.float32, hint="keep the input's dtype")
### END HIDDEN TESTS
print("relu: tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_leaky_relu", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
import torch.nn.functional as F
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_array, check_grad

x = np.array([-2.0, 0.0, 3.0, -0.5])
out, cache = leaky_relu_forward(x, alpha=0.1)
check_array(out, np.array([-0.2, 0.0, 3.0, -0.05]), "leaky_relu_forward(x, alpha=0.1)", dtype=np.float64)
dx = leaky_relu_backward(np.array([1.0, 1.0, 2.0, 4.0]), cache)
check_array(dx, np.array([0.1, 0.1, 2.0, 0.4]), "leaky_relu_backward dx (alpha=0.1)", dtype=np.float64,
            hint="at x == 0 exactly, use the slope of the negative side, as PyTorch does")
out, _ = leaky_relu_forward(np.array([-100.0]))
check_array(out, np.array([-1.0]), "leaky_relu_forward with the default alpha",
            hint="the default negative slope is alpha=0.01")

rng = np.random.default_rng(3)
x = rng.uniform(0.1, 2.0, size=(3, 4)) * rng.choice([-1.0, 1.0], size=(3, 4))  # away from the kink
dout = rng.normal(size=(3, 4))
_, cache = leaky_relu_forward(x, alpha=0.2)
check_grad(leaky_relu_backward(dout, cache),
           numerical_grad_array(lambda z: leaky_relu_forward(z, alpha=0.2)[0], x, dout), "leaky_relu_backward dx")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(104)
for shape, alpha in [((10,), 0.01), ((4, 7), 0.3), ((2, 2, 3), 0.05)]:
    x = rng.normal(size=shape)
    x[rng.random(shape) < 0.2] = 0.0
    dout = rng.normal(size=shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.leaky_relu(xt, negative_slope=alpha)
    yt.backward(torch.tensor(dout))
    out, cache = leaky_relu_forward(x, alpha=alpha)
    check_array(out, yt.detach().numpy(), f"leaky_relu_forward on shape {shape}, alpha={alpha}", dtype=np.float64)
    check_array(leaky_relu_backward(dout, cache), xt.grad.numpy(),
                f"leaky_relu_backward on shape {shape}, alpha={alpha}", dtype=np.float64,
                hint="PyTorch uses slope alpha at x == 0")
x32, dout32 = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
xt = torch.from_numpy(x32).requires_grad_(True)
F.leaky_relu(xt, 0.2).backward(torch.from_numpy(dout32))
out, cache = leaky_relu_forward(x32, alpha=0.2)
check_array(out, F.leaky_relu(torch.from_numpy(x32), 0.2).numpy(), "leaky_relu_forward on float32 input",
            rtol=1e-6, atol=1e-7, dtype=np.float32, hint="keep the input's dtype")
check_array(leaky_relu_backward(dout32, cache), xt.grad.numpy(), "leaky_relu_backward on float32 input",
            rtol=1e-6, atol=1e-7, dtype=np.float32,
            hint="keep the input's dtype: an array of float64 slopes times a float32 dout gives float64")
### END HIDDEN TESTS
print("leaky_relu: tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_prelu", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
import torch.nn.functional as F
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_array, check_grad

# Fixed case, N = 3 examples of D = 2 features.
x = np.array([[-1.0, 2.0], [-2.0, -3.0], [4.0, -0.5]])
alpha = np.array([0.1, 0.5])
out, cache = prelu_forward(x, alpha)
check_array(out, np.array([[-0.1, 2.0], [-0.2, -1.5], [4.0, -0.25]]), "prelu_forward(x, alpha)",
            dtype=np.float64, hint="feature d (column d) uses slope alpha[d]")
dx, dalpha = prelu_backward(np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 1.0]]), cache)
check_array(dx, np.array([[0.1, 2.0], [0.3, -0.5], [0.5, 0.5]]), "prelu_backward dx", dtype=np.float64)
check_array(dalpha, np.array([-7.0, 2.5]), "prelu_backward dalpha", dtype=np.float64,
            hint="alpha has shape (D,), and every example uses alpha[d] in column d: differentiate the "
                 "forward definition with respect to alpha[d] and collect every place it is used")

# Gradient check of both outputs; |x| >= 0.1 keeps every probe on one side of the kink.
rng = np.random.default_rng(4)
x = rng.uniform(0.1, 2.0, size=(5, 3)) * rng.choice([-1.0, 1.0], size=(5, 3))
alpha = rng.uniform(0.05, 0.5, size=3)
dout = rng.normal(size=(5, 3))
_, cache = prelu_forward(x, alpha)
dx, dalpha = prelu_backward(dout, cache)
check_grad(dx, numerical_grad_array(lambda z: prelu_forward(z, alpha)[0], x, dout), "prelu_backward dx")
check_grad(dalpha, numerical_grad_array(lambda a: prelu_forward(x, a)[0], alpha, dout), "prelu_backward dalpha")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(105)
for n, d in [(1, 1), (7, 4), (5, 5), (16, 9)]:  # (5, 5): a sum over the wrong axis keeps the shape
    x = rng.normal(size=(n, d))
    x[rng.random((n, d)) < 0.15] = 0.0
    alpha = rng.uniform(-0.5, 1.0, size=d)
    dout = rng.normal(size=(n, d))
    xt = torch.tensor(x, requires_grad=True)
    at = torch.tensor(alpha, requires_grad=True)
    # F.prelu indexes its weight along dim 1 (channels); for (N, D) inputs that is the feature axis.
    yt = F.prelu(xt, at)
    yt.backward(torch.tensor(dout))
    out, cache = prelu_forward(x, alpha)
    check_array(out, yt.detach().numpy(), f"prelu_forward on shape {(n, d)}", dtype=np.float64)
    dx, dalpha = prelu_backward(dout, cache)
    check_array(dx, xt.grad.numpy(), f"prelu_backward dx on shape {(n, d)}", dtype=np.float64)
    check_array(dalpha, at.grad.numpy(), f"prelu_backward dalpha on shape {(n, d)}", rtol=1e-9,
                dtype=np.float64)
### END HIDDEN TESTS
print("prelu: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "elu_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. ELU
#
# The exponential linear unit (Clevert, Unterthiner and Hochreiter, 2015):
#
# $$f(x) = \begin{cases} x & x > 0 \\ \alpha\,(e^{x} - 1) & x \le 0. \end{cases}$$
#
# Negative inputs saturate smoothly towards $-\alpha$, which pushes the mean activation closer to zero than
# ReLU does. With $\alpha = 1$ the derivative is continuous at $0$; for other $\alpha$ there is a kink, and we
# again take the negative-side slope there, as PyTorch does. On the negative side the derivative can be
# computed from what the forward pass already has: decide what to cache.
#
# Do not evaluate $e^{x}$ for large positive $x$ (it overflows) even though that branch is discarded:
# `np.where` computes both branches. `np.expm1` computes $e^{x} - 1$ accurately for small $|x|$.

# %% nbgrader={"grade": false, "grade_id": "elu_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def elu_forward(x, alpha=1.0):
    """ELU, elementwise. x: any shape; alpha: float. Returns (out, cache), out of x's shape."""
    ### BEGIN SOLUTION
    # Clamping first keeps exp from overflowing on the branch that np.where throws away.
    out = np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
    cache = (x, out, alpha)
    ### END SOLUTION
    return out, cache


def elu_backward(dout, cache):
    """dout: upstream gradient, shape of out. Returns dx, shape of x."""
    ### BEGIN SOLUTION
    x, out, alpha = cache
    dx = dout * np.where(x > 0, 1.0, out + alpha)
    ### END SOLUTION
    return dx


# %% nbgrader={"grade": true, "grade_id": "test_elu", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
import torch.nn.functional as F
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_array, check_grad

# alpha = 2: f(-ln 2) = 2 * (1/2 - 1) = -1, slope 2 * 1/2 = 1; at 0 the slope is alpha = 2.
x = np.array([-np.log(2.0), 0.0, 1.5])
out, cache = elu_forward(x, alpha=2.0)
check_array(out, np.array([-1.0, 0.0, 1.5]), "elu_forward(x, alpha=2)", dtype=np.float64)
check_array(elu_backward(np.array([1.0, 1.0, 3.0]), cache), np.array([1.0, 2.0, 3.0]),
            "elu_backward dx (alpha=2)", dtype=np.float64,
            hint="differentiate the negative branch; at x == 0 use the slope of the negative side")
try:
    with np.errstate(over="raise", invalid="raise"):
        out, _ = elu_forward(np.array([-1000.0, 1000.0]))
except FloatingPointError as err:
    raise AssertionError(f"elu_forward overflows for large x ({err}): "
                         "np.where evaluates both branches, so clamp x before exp") from None
check_array(out, np.array([-1.0, 1000.0]), "elu_forward at +-1000 with the default alpha=1")

rng = np.random.default_rng(5)
x = rng.uniform(0.1, 3.0, size=(4, 4)) * rng.choice([-1.0, 1.0], size=(4, 4))  # alpha != 1 has a kink at 0
dout = rng.normal(size=(4, 4))
_, cache = elu_forward(x, alpha=0.7)
check_grad(elu_backward(dout, cache), numerical_grad_array(lambda z: elu_forward(z, alpha=0.7)[0], x, dout),
           "elu_backward dx")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(106)
for shape, alpha in [((12,), 1.0), ((5, 6), 0.5), ((2, 3, 4), 1.7)]:
    x = rng.normal(size=shape) * 3
    x[rng.random(shape) < 0.15] = 0.0
    dout = rng.normal(size=shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.elu(xt, alpha=alpha)
    yt.backward(torch.tensor(dout))
    out, cache = elu_forward(x, alpha=alpha)
    check_array(out, yt.detach().numpy(), f"elu_forward on shape {shape}, alpha={alpha}", rtol=1e-10,
                atol=1e-14, dtype=np.float64)
    check_array(elu_backward(dout, cache), xt.grad.numpy(), f"elu_backward on shape {shape}, alpha={alpha}",
                rtol=1e-10, atol=1e-14, dtype=np.float64)
x32, dout32 = rng.normal(size=(3, 4)).astype(np.float32) * 3, rng.normal(size=(3, 4)).astype(np.float32)
xt = torch.from_numpy(x32).requires_grad_(True)
F.elu(xt, alpha=0.5).backward(torch.from_numpy(dout32))
out, cache = elu_forward(x32, alpha=0.5)
check_array(out, F.elu(torch.from_numpy(x32), alpha=0.5).numpy(), "elu_forward on float32 input",
            rtol=1e-5, atol=1e-6, dtype=np.float32, hint="keep the input's dtype")
check_array(elu_backward(dout32, cache), xt.grad.numpy(), "elu_backward on float32 input",
            rtol=1e-5, atol=1e-6, dtype=np.float32, hint="keep the input's dtype")
### END HIDDEN TESTS
print("elu: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "maxout_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 5. Maxout
#
# A maxout unit (Goodfellow et al., 2013) is not a fixed nonlinearity applied to one affine map: it
# computes $k$ affine maps and keeps the largest. With $k = 2$ pieces, for `x` of shape `(N, D)`,
#
# $$z^{(1)} = x W_1 + b_1, \qquad z^{(2)} = x W_2 + b_2, \qquad \text{out} = \max\bigl(z^{(1)}, z^{(2)}\bigr)
# \quad\text{(elementwise, shape } (N, H)).$$
#
# ReLU of $x W_1 + b_1$ is the special case $W_2 = 0, b_2 = 0$, and Leaky ReLU with any slope $\alpha \le 1$ is
# $W_2 = \alpha W_1, b_2 = \alpha b_1$. The price is parameters: with $k$ pieces, $k$ times the weights and
# biases of an ordinary layer (Goodfellow et al. allow any $k$; we use $k = 2$).
#
# **Ties.** Where $z^{(1)}_{nh} = z^{(2)}_{nh}$ the maximum has a kink. Give the whole gradient of that entry to
# the **first** piece (a valid subgradient; PyTorch's `torch.maximum` splits ties evenly instead, which random
# inputs never hit).
#
# **Backward.** `maxout_backward` returns the gradients of the loss with respect to all five inputs of the
# forward pass. Differentiate the definition above (each output entry is one of the two pieces), and let the
# gradient check in the test cell be your feedback.

# %% nbgrader={"grade": false, "grade_id": "maxout_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def maxout_forward(x, w1, b1, w2, b2):
    """Two-piece maxout layer.

    x: (N, D); w1, w2: (D, H); b1, b2: (H,).
    Returns (out, cache), out of shape (N, H).
    """
    ### BEGIN SOLUTION
    z1 = x @ w1 + b1
    z2 = x @ w2 + b2
    first = z1 >= z2
    out = np.where(first, z1, z2)
    cache = (x, w1, w2, first)
    ### END SOLUTION
    return out, cache


def maxout_backward(dout, cache):
    """dout: (N, H). Returns (dx, dw1, db1, dw2, db2) with the shapes of x, w1, b1, w2, b2."""
    ### BEGIN SOLUTION
    x, w1, w2, first = cache
    dz1 = dout * first
    dz2 = dout * ~first
    dx = dz1 @ w1.T + dz2 @ w2.T
    dw1 = x.T @ dz1
    db1 = dz1.sum(axis=0)
    dw2 = x.T @ dz2
    db2 = dz2.sum(axis=0)
    ### END SOLUTION
    return dx, dw1, db1, dw2, db2


# %% nbgrader={"grade": true, "grade_id": "test_maxout", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_array, check_grad

# Fixed case: z1 = [[1], [3]], z2 = [[1.5], [0.5]]: example 0 takes piece 2, example 1 takes piece 1.
x = np.array([[1.0, 2.0], [3.0, 1.0]])
w1, b1 = np.array([[1.0], [0.0]]), np.array([0.0])
w2, b2 = np.array([[0.0], [1.0]]), np.array([-0.5])
out, cache = maxout_forward(x, w1, b1, w2, b2)
check_array(out, np.array([[1.5], [3.0]]), "maxout_forward", dtype=np.float64)
grads = maxout_backward(np.ones((2, 1)), cache)
assert isinstance(grads, tuple) and len(grads) == 5, \
    f"maxout_backward should return the tuple (dx, dw1, db1, dw2, db2), got {type(grads).__name__}"
expected = {"dx": [[0.0, 1.0], [1.0, 0.0]], "dw1": [[3.0], [1.0]], "db1": [1.0],
            "dw2": [[1.0], [2.0]], "db2": [1.0]}
for (name, want), got in zip(expected.items(), grads):
    check_array(got, np.array(want), f"maxout_backward {name}", dtype=np.float64,
                hint="which piece does each output entry come from, and what does the other piece contribute?")

# Gradient check. A probe moves z by about 1e-5, so every |z1 - z2| must be far larger than that.
rng = np.random.default_rng(6)
x = rng.normal(size=(4, 3))
w1, w2 = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
b1, b2 = rng.normal(size=5), rng.normal(size=5)
dout = rng.normal(size=(4, 5))
gap = np.abs((x @ w1 + b1) - (x @ w2 + b2)).min()
assert gap > 1e-3, f"test data lies too close to a kink (gap {gap:.1e}); this is a bug in the test"
params = {"x": x, "w1": w1, "b1": b1, "w2": w2, "b2": b2}
_, cache = maxout_forward(x, w1, b1, w2, b2)
for (name, value), got in zip(params.items(), maxout_backward(dout, cache)):
    def f(v, name=name):
        return maxout_forward(**{**params, name: v})[0]
    check_grad(got, numerical_grad_array(f, value, dout), f"maxout_backward d{name}")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(107)
for n, d, h in [(1, 1, 1), (6, 4, 3), (20, 7, 11)]:
    arrays = {"x": rng.normal(size=(n, d)), "w1": rng.normal(size=(d, h)), "b1": rng.normal(size=h),
              "w2": rng.normal(size=(d, h)), "b2": rng.normal(size=h)}
    dout = rng.normal(size=(n, h))
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    yt = torch.maximum(ts["x"] @ ts["w1"] + ts["b1"], ts["x"] @ ts["w2"] + ts["b2"])
    yt.backward(torch.tensor(dout))
    out, cache = maxout_forward(**arrays)
    check_array(out, yt.detach().numpy(), f"maxout_forward with N, D, H = {n}, {d}, {h}", dtype=np.float64)
    grads = maxout_backward(dout, cache)
    for name, got in zip(["x", "w1", "b1", "w2", "b2"], grads):
        check_array(got, ts[name].grad.numpy(), f"maxout_backward d{name} with N, D, H = {n}, {d}, {h}",
                    rtol=1e-9, dtype=np.float64)
### END HIDDEN TESTS
print("maxout: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "dead_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 6. Dead units
#
# A ReLU unit whose pre-activation is negative for every example of a batch outputs $0$ for all of them,
# and its local gradient is $0$ for all of them too: the weights feeding it get no gradient from that batch.
# If that holds for the whole training set the unit is **dead**: gradient descent cannot bring it back,
# because nothing it is shown produces a gradient. A too-large learning rate can cause this: one big update
# can push a unit's weights and bias to where it is negative on all the data.
#
# Write `dead_unit_fraction(h)`: given the post-activation outputs `h` of a layer for a batch of examples
# (the whole training set, when you want to know whether a unit is dead), shape `(N, H)`
# (one column per unit), return the fraction of the `H` units whose output is exactly $0$ for **all** `N`
# examples, as a Python `float`. Only exact zeros count: a Leaky ReLU output of $-0.001$ is not zero.

# %% nbgrader={"grade": false, "grade_id": "dead_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def dead_unit_fraction(h):
    """h: (N, H) post-activation outputs. Returns the fraction of units (columns) that are zero for
    every example, a float in [0, 1]."""
    ### BEGIN SOLUTION
    return float(np.mean(np.all(h == 0, axis=0)))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_dead_unit_fraction", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.testing import check_scalar

h = np.array([[0.0, 1.0, 0.0, 0.0],
              [0.0, 2.0, 0.0, 0.5],
              [0.0, 0.0, 0.0, 0.0]])
check_scalar(dead_unit_fraction(h), 0.5, "dead_unit_fraction, units 0 and 2 dead out of 4",
             hint="a unit is a column; it is dead if all its N entries are 0")
check_scalar(dead_unit_fraction(np.zeros((5, 3))), 1.0, "dead_unit_fraction, all units dead")
check_scalar(dead_unit_fraction(np.full((5, 3), 0.2)), 0.0, "dead_unit_fraction, no unit dead")
check_scalar(dead_unit_fraction(np.array([[0.0, 3.0, 0.0]])), 2 / 3, "dead_unit_fraction with one example")
check_scalar(dead_unit_fraction(np.array([[-0.01, 0.0], [-0.02, 0.0]])), 0.5,
             "dead_unit_fraction with negative outputs", hint="only exact zeros count as inactive")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(108)
for n, units in [(1, 1), (2, 50), (64, 7), (300, 128)]:
    h = np.maximum(rng.normal(size=(n, units)), 0.0) + 0.01  # every unit alive ...
    dead = rng.random(units) < rng.uniform(0.0, 1.0)
    h[:, dead] = 0.0                                          # ... except the planted ones
    h = h.astype((np.float32, np.float64)[rng.integers(2)])
    check_scalar(dead_unit_fraction(h), float(dead.mean()), f"dead_unit_fraction on a random {h.shape} batch")
    # A unit that fires on just one example is alive.
    if n > 1:
        h[:, :] = 0.0
        h[rng.integers(n), :] = 1.0
        check_scalar(dead_unit_fraction(h), 0.0, f"dead_unit_fraction when each unit fires once ({h.shape})")
### END HIDDEN TESTS
print("dead_unit_fraction: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "hooks_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 7. Watching dead units during training: forward hooks
#
# PyTorch lets you attach a function to any `nn.Module` that runs after each of its forward passes:
#
# ```python
# handle = module.register_forward_hook(hook)   # hook(module, inputs, output) -> None
# ...
# handle.remove()                               # detach it again
# ```
#
# The hook sees the module's `output` tensor. It must return `None`; a hook that returns a value replaces
# the module's output. Keep the handles so the hooks can be removed: a forgotten hook keeps running (and
# keeps memory alive) for as long as the model does.
#
# Write the class `DeadUnitMonitor`:
#
# * `DeadUnitMonitor(model, layer_types=(nn.ReLU,), measure=None)` registers a forward hook on every submodule
#   of `model` that is an instance of one of `layer_types` (walk `model.named_modules()`).
# * Each time such a module runs, its hook computes `measure(h)`, where `h` is that module's output as a NumPy
#   array of shape `(N, H)` (detach it and move it to the CPU first), and appends the result to that layer's
#   list. `measure=None` means `dead_unit_fraction`. Other measures make the same monitor record other
#   statistics (the mean activation, the fraction of saturated tanh units); the tests use that to check your
#   monitor on its own, with measures of their own.
# * `history()` returns a dict mapping each monitored module's name (as given by `named_modules()`, e.g. `"1"`
#   or `"encoder.3"`) to the list of values recorded so far, one per forward pass, in order. Layers that
#   have not run yet map to an empty list.
# * `remove()` removes every hook; forward passes after that record nothing.
#
# Hooks only see modules. Activations called as functions inside a `forward` method (`F.relu(x)`) are
# invisible to them, which is why the models here use `nn.ReLU()` layers. The provided function
# `monitor_forward_passes` below shows how the monitor is meant to be used.

# %% nbgrader={"grade": false, "grade_id": "monitor_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
class DeadUnitMonitor:
    """Records a statistic (by default the dead-unit fraction) of selected layers on every forward pass."""

    def __init__(self, model, layer_types=(nn.ReLU,), measure=None):
        """Registers a forward hook on every submodule of model that is one of layer_types.
        measure(h) -> float is applied to each output h, an (N, H) NumPy array; None means dead_unit_fraction."""
        ### BEGIN SOLUTION
        # Looked up when the monitor is made, not when the class is defined: a corrected
        # dead_unit_fraction is picked up without redefining the class.
        self._measure = dead_unit_fraction if measure is None else measure
        self._history = {}
        self._handles = []
        for name, module in model.named_modules():
            if isinstance(module, tuple(layer_types)):
                self._history[name] = []
                self._handles.append(module.register_forward_hook(self._make_hook(name)))
        ### END SOLUTION

    def _make_hook(self, name):
        """Returns the hook function for the layer called name (a helper for __init__)."""
        ### BEGIN SOLUTION
        def hook(module, inputs, output):
            h = output.detach().reshape(output.shape[0], -1).cpu().numpy()
            self._history[name].append(self._measure(h))
        return hook
        ### END SOLUTION

    def history(self):
        """Returns {layer name: [measured value for each forward pass so far]}."""
        ### BEGIN SOLUTION
        return {name: list(values) for name, values in self._history.items()}
        ### END SOLUTION

    def remove(self):
        """Removes all hooks registered by this monitor."""
        ### BEGIN SOLUTION
        for handle in self._handles:
            handle.remove()
        self._handles = []
        ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "monitor_helper", "locked": true, "schema_version": 3, "solution": false, "task": false}
def monitor_forward_passes(model, batches, layer_types=(nn.ReLU,), measure=None):
    """Runs each batch through model (without gradients) while a DeadUnitMonitor(model, layer_types, measure)
    is attached, removes the monitor, then runs the first batch once more.

    Returns (history, outputs, hooks_left): the monitor's history() at the end, the model's outputs
    on the monitored passes, and the number of forward hooks still registered anywhere in model.
    The tests below use it (the grader may call your code from another process, so the model, the
    monitor and the forward passes have to stay together); you can use it to try your monitor.
    """
    monitor = DeadUnitMonitor(model, layer_types=layer_types, measure=measure)
    with torch.no_grad():
        outputs = [model(batch) for batch in batches]
        monitor.remove()
        model(batches[0])
    hooks_left = sum(len(module._forward_hooks) for module in model.modules())
    return monitor.history(), outputs, hooks_left


# %% nbgrader={"grade": true, "grade_id": "test_monitor_counts", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
import torch.nn as nn
from nnkit.testing import check_close

def total_output(h):
    # Any statistic will do to check the monitor's bookkeeping: here, the sum of a layer's outputs.
    assert isinstance(h, np.ndarray) and h.ndim == 2, \
        f"the monitor should pass measure an (N, H) NumPy array, got {type(h).__name__} of shape {np.shape(h)}"
    return float(h.sum())

def known_model():
    # Layer "1": unit 0 = relu(x0), unit 1 = relu(x1), unit 2 has bias -100 and unit 3 is all-zero,
    # so units 2 and 3 are dead on any input with |x| < 10. Layer "3": 3 units, the last one dead.
    first, second = nn.Linear(2, 4), nn.Linear(4, 3)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]))
        first.bias.copy_(torch.tensor([0.0, 0.0, -100.0, 0.0]))
        second.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
        second.bias.copy_(torch.tensor([1.0, 1.0, -1.0]))
    return nn.Sequential(first, nn.ReLU(), second, nn.ReLU(), nn.Linear(3, 2))

model = known_model()
batches = [torch.tensor([[1.0, 2.0], [3.0, -1.0]]),
           torch.tensor([[-1.0, 2.0], [-3.0, 1.0]])]  # x0 < 0 everywhere: unit 0 of layer "1" dead too
record, outputs, _ = monitor_forward_passes(model, batches, measure=total_output)
assert isinstance(record, dict), f"history() should return a dict, got {type(record).__name__}"
assert sorted(record) == ["1", "3"], \
    f"history() should have one entry per nn.ReLU, named '1' and '3' as in named_modules(); got keys {sorted(record)}"
# Layer "1" outputs [[1, 2, 0, 0], [3, 0, 0, 0]] on batch 0 and [[0, 2, 0, 0], [0, 1, 0, 0]] on batch 1.
check_close(record["1"], [6.0, 3.0], "measure(output) of ReLU layer '1' over two forward passes",
            hint="one value per forward pass, in order, each computed by the measure given to the monitor")
check_close(record["3"], [10.0, 7.0], "measure(output) of ReLU layer '3' over two forward passes")

# The hooks must observe, not change, the model's output.
with torch.no_grad():
    for i, (got, batch) in enumerate(zip(outputs, batches)):
        assert torch.allclose(got, model(batch), rtol=1e-6, atol=1e-7), \
            f"the model's output on batch {i} changed while the monitor was attached: hooks must return None"
### BEGIN HIDDEN TESTS
# Nested modules, several layer types, random planted dead units.
rng = np.random.default_rng(109)
torch.manual_seed(109)
sizes = [int(s) for s in rng.integers(3, 12, size=3)]
lin0, lin1, lin2 = nn.Linear(5, sizes[0]), nn.Linear(sizes[0], sizes[1]), nn.Linear(sizes[1], sizes[2])
planted = []
with torch.no_grad():
    for lin in (lin0, lin1, lin2):
        dead = torch.from_numpy(rng.random(lin.out_features) < 0.4)
        lin.weight.mul_(0.01)
        lin.weight[dead] = 0.0
        lin.bias[dead] = -1.0
        lin.bias[~dead] = 50.0  # with the small weights, alive units are positive on every input below
        planted.append(dead.double().mean().item())
model = nn.Sequential(nn.Sequential(lin0, nn.ReLU()), nn.Tanh(), lin1, nn.ReLU(),
                      nn.Sequential(nn.Sequential(lin2, nn.ReLU())))
batches = [torch.from_numpy(rng.uniform(-1, 1, size=(b, 5))).float() for b in (4, 1, 9)]

def reference_dead_fraction(h):
    silent = ~(h != 0).any(axis=0)  # a column with no nonzero entry
    return float(silent.sum() / h.shape[1])

record, _, _ = monitor_forward_passes(model, batches, measure=reference_dead_fraction)
names = [name for name, m in model.named_modules() if isinstance(m, nn.ReLU)]
assert sorted(record) == sorted(names), f"monitored layers: expected {sorted(names)}, got {sorted(record)}"
for name, fraction in zip(names, planted):
    check_close(record[name], [fraction] * 3, f"dead fractions of ReLU layer {name!r} over three passes")

record, _, _ = monitor_forward_passes(model, [torch.zeros(2, 5)], layer_types=(nn.Tanh,),
                                     measure=reference_dead_fraction)
assert sorted(record) == ["1"], f"layer_types=(nn.Tanh,) should monitor only layer '1'; got {sorted(record)}"
check_close(record["1"], [planted[0]], "dead fraction of the tanh layer '1' (tanh(0) = 0)")
### END HIDDEN TESTS
print("DeadUnitMonitor counts: tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_monitor_remove", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
# The measure is the batch size: any statistic will do to count the recorded values.
record, _, hooks_left = monitor_forward_passes(model, [torch.randn(4, 3), torch.randn(6, 3)],
                                               measure=lambda h: float(len(h)))
counts = {name: len(values) for name, values in record.items()}
assert counts == {"1": 2, "3": 2}, \
    (f"two forward passes with the monitor attached, then one after remove(): each layer should hold "
     f"2 values, got {counts}")
assert hooks_left == 0, f"remove() left {hooks_left} forward hook(s) registered on the model"
### BEGIN HIDDEN TESTS
model = nn.Sequential(nn.Sequential(nn.Linear(3, 5), nn.ReLU()), nn.Tanh(),
                      nn.Sequential(nn.Linear(5, 4), nn.Sequential(nn.ReLU(), nn.Tanh())))
record, _, hooks_left = monitor_forward_passes(model, [torch.randn(2, 3)] * 3, layer_types=(nn.ReLU, nn.Tanh),
                                               measure=lambda h: float(len(h)))
counts = {name: len(values) for name, values in record.items()}
assert counts == {"0.1": 3, "1": 3, "2.1.0": 3, "2.1.1": 3}, \
    f"with layer_types=(nn.ReLU, nn.Tanh) and three monitored passes, expected 3 values per layer, got {counts}"
assert hooks_left == 0, f"remove() left {hooks_left} forward hook(s) on a nested model"
### END HIDDEN TESTS
print("DeadUnitMonitor.remove: tests passed")

# %% [markdown] nbgrader={"grade": false, "grade_id": "train_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 8. Training on MNIST-1D, on the GPU if there is one
#
# MNIST-1D (Greydanus, 2020) is a small 1-D stand-in for MNIST: 40-sample signals of ten digit templates,
# 4000 for training and 1000 for testing, generated on your machine by `nnkit.data.load_mnist1d()` (after
# `import nnkit`, as in the setup cell). The cell below gives you the model: `make_mlp(activation, seed)` builds a
# 40–100–100–10 MLP whose hidden activations are modules (so a monitor can see them), initialized from `seed`.
#
# Write `train_mlp(activation, lr, epochs, device, seed, batch_size=100)`:
#
# 1. Load the data with `nnkit.data.load_mnist1d()` and build the model with `make_mlp(activation, seed)`.
# 2. Move the model and the data to `device`. The data set is small, so keep all of it on the device and
#    slice minibatches there. Code written this way runs unchanged on a CPU, a CUDA GPU or Apple's MPS.
# 3. Train for `epochs` epochs with `torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)` and the
#    cross-entropy loss. Make one `torch.Generator` seeded with `seed` (on the CPU, so that the order is the same
#    on every device) before the first epoch; at the start of every epoch draw a new order of the training
#    examples with `torch.randperm(n, generator=...)`, and take minibatches of `batch_size` consecutive examples
#    of that order (the last one may be smaller).
# 4. Return a dict with
#    * `"loss_history"`: a list of `epochs` Python floats, the mean training loss of each epoch
#      (the average of the minibatch losses, weighted by their sizes);
#    * `"test_accuracy"`: a Python float, the accuracy of the trained model on the test set;
#    * `"state_dict"`: the trained model's `state_dict()`, with every tensor moved to the CPU.
#
# The hidden tests repeat your training with PyTorch and compare the numbers, so follow this recipe exactly:
# the order in which the examples are seen changes the result. Evaluate in `model.eval()` mode under
# `torch.no_grad()`. Calling `.item()` on every minibatch loss forces the GPU to wait for the CPU; summing the
# detached losses on the device and reading the total once per epoch does not.
#
# > **What `momentum=0.9` does.** With its defaults (`dampening=0`, `nesterov=False`), PyTorch's SGD keeps a
# > velocity $v$ for every parameter $w$, starting at $0$, and on each step with gradient $g$ does
# > $v \leftarrow \mu v + g$, then $w \leftarrow w - \text{lr}\cdot v$, here with $\mu = 0.9$. Many texts write
# > $v \leftarrow \mu v - \text{lr}\cdot g$, $w \leftarrow w + v$ instead. With a constant learning rate the two
# > are the same method; when the learning rate changes during training they are not: PyTorch applies the new
# > rate to the whole accumulated velocity at once, the textbook form only to the new gradients. If the
# > gradient stays the same from step to step, the velocity approaches $g / (1 - \mu)$, so each step tends to
# > $\text{lr}/(1 - \mu)$ times the gradient: ten times the learning rate for $\mu = 0.9$. The chapter page
# > checks all of this against `torch.optim.SGD`.

# %% nbgrader={"grade": false, "grade_id": "model_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def make_mlp(activation, seed, hidden=(100, 100), n_in=40, n_out=10):
    """An MLP n_in -> hidden... -> n_out with the named activation after each hidden layer,
    initialized by PyTorch's default scheme from the given seed."""
    torch.manual_seed(seed)
    layers, width = [], n_in
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


print(make_mlp("relu", seed=0))



# %% nbgrader={"grade": false, "grade_id": "train_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_mlp(activation, lr, epochs, device, seed, batch_size=100):
    """Train make_mlp(activation, seed) on MNIST-1D with SGD (momentum 0.9).

    activation: a key of ACTIVATIONS; device: a torch.device or a string such as "cpu".
    Returns {"loss_history": [float] * epochs, "test_accuracy": float,
             "state_dict": {parameter name: tensor on the CPU}}.
    """
    ### BEGIN SOLUTION
    device = torch.device(device)
    x_train, y_train, x_test, y_test = nnkit.data.load_mnist1d()
    x_train, y_train = torch.from_numpy(x_train).to(device), torch.from_numpy(y_train).to(device)
    x_test, y_test = torch.from_numpy(x_test).to(device), torch.from_numpy(y_test).to(device)

    model = make_mlp(activation, seed).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)  # on the CPU: same order on every device
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
    state_dict = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    return {"loss_history": loss_history, "test_accuracy": test_accuracy, "state_dict": state_dict}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_train_mlp", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import nnkit
import torch

device = nnkit.pick_device()
result = train_mlp("relu", lr=0.05, epochs=3, device=device, seed=0)
assert isinstance(result, dict), f"train_mlp should return a dict, got {type(result).__name__}"
missing = {"loss_history", "test_accuracy", "state_dict"} - set(result)
assert not missing, f"the dict returned by train_mlp lacks the keys {sorted(missing)}"
losses = result["loss_history"]
assert isinstance(losses, list) and len(losses) == 3, \
    f"loss_history should be a list with one value per epoch (3), got {type(losses).__name__} of length {len(losses)}"
assert all(isinstance(v, float) and math.isfinite(v) for v in losses), \
    f"loss_history should hold finite Python floats (use .item()), got {losses}"
assert 1.5 < losses[0] < 2.5, \
    f"the first epoch's mean loss is {losses[0]:.3f}; with 10 classes it should start near ln 10 = 2.30 and fall below it"
assert losses[-1] < losses[0] - 0.3, f"training should lower the loss clearly in 3 epochs, got {losses}"
acc = result["test_accuracy"]
assert isinstance(acc, float) and 0.3 < acc <= 1.0, \
    f"test_accuracy should be a Python float (use .item()) well above chance (0.1) after 3 epochs, got {acc!r}"
state = result["state_dict"]
want_shapes = {name: tuple(t.shape) for name, t in make_mlp("relu", seed=0).state_dict().items()}
assert isinstance(state, dict) and sorted(state) == sorted(want_shapes), \
    f"state_dict should map the model's parameter names {sorted(want_shapes)} to tensors, got {state!r:.200}"
for name, tensor in state.items():
    assert isinstance(tensor, torch.Tensor) and tuple(tensor.shape) == want_shapes[name], \
        f"state_dict[{name!r}] should be a tensor of shape {want_shapes[name]}, got {tensor!r:.100}"
### BEGIN HIDDEN TESTS
import numpy as np
import torch.nn.functional as F
from nnkit.testing import check_array

def reference_training(activation, lr, epochs, seed, batch_size):
    # The recipe of the task, written out with PyTorch on the CPU.
    xs, ys, xs_test, ys_test = map(torch.from_numpy, nnkit.data.load_mnist1d())
    net = make_mlp(activation, seed)
    sgd = torch.optim.SGD(net.parameters(), lr, momentum=0.9)
    shuffler = torch.Generator()
    shuffler.manual_seed(seed)
    history = []
    for _ in range(epochs):
        perm, summed = torch.randperm(xs.shape[0], generator=shuffler), 0.0
        for i in range(0, xs.shape[0], batch_size):
            rows = perm[i:i + batch_size]
            batch_loss = F.cross_entropy(net(xs[rows]), ys[rows])
            sgd.zero_grad()
            batch_loss.backward()
            sgd.step()
            summed += batch_loss.item() * rows.numel()
        history.append(summed / xs.shape[0])
    with torch.no_grad():
        hits = net(xs_test).argmax(1).eq(ys_test)
    return history, hits.double().mean().item(), net.state_dict()

cases = [(("relu", 0.05, 3, 0, 100), result),
         (("tanh", 0.1, 2, 3, 300), None)]  # 4000 = 13 * 300 + 100: the last minibatch is smaller
for (activation, lr, epochs, seed, batch_size), got in cases:
    if got is None:
        got = train_mlp(activation, lr=lr, epochs=epochs, device=device, seed=seed, batch_size=batch_size)
    what = f"train_mlp({activation!r}, lr={lr}, epochs={epochs}, seed={seed}, batch_size={batch_size})"
    want_losses, want_acc, want_state = reference_training(activation, lr, epochs, seed, batch_size)
    check_array(np.array(got["loss_history"]), np.array(want_losses), f"loss_history of {what}", rtol=1e-3,
                hint="one torch.Generator seeded with seed, a new torch.randperm order every epoch, SGD with "
                     "momentum 0.9, and each epoch's loss averaged over examples (weighted by minibatch size)")
    assert abs(got["test_accuracy"] - want_acc) <= 0.01, \
        f"test_accuracy of {what} is {got['test_accuracy']}, expected {want_acc} (PyTorch, same recipe)"
    for name, tensor in want_state.items():
        check_array(got["state_dict"][name].numpy(), tensor.numpy(), f"state_dict[{name!r}] of {what}",
                    rtol=1e-2, atol=1e-3, hint="return the parameters of the trained model")
### END HIDDEN TESTS
print("train_mlp: tests passed")

# %% [markdown] nbgrader={"grade": false, "grade_id": "high_lr_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Too high a learning rate kills ReLUs
#
# With momentum 0.9 the steps are about ten times the learning rate: $0.5$ at `lr=0.05`, $5$ at `lr=0.5`. On
# this network and data the large steps push many units of the second hidden layer to a state where they
# are negative on every training example: dead. The test below trains with both rates for 5 epochs and counts
# the dead units itself, from the `state_dict` your `train_mlp` returns. It counts a unit as dead when the loss
# on the whole training set sends exactly zero gradient to its incoming weights and bias (for a ReLU unit, that
# means its output is zero on every training example), and asks for at least 10 percentage points more dead
# units at the high rate. At the high rate training is chaotic: the exact fraction changes with the seed and
# with the order of floating-point additions (one CPU thread or two, CPU or GPU); the effect does not.
#
# The chapter page runs the same experiment with a different set-up and reports different numbers: it draws
# the initial weights with He's rule (standard deviation $\sqrt{2/\text{fan-in}}$) and calls 0.3 high, while
# `make_mlp` here keeps PyTorch's default initialization of `nn.Linear` (uniform, standard deviation
# $1/\sqrt{3\,\text{fan-in}}$, about 2.4 times smaller) and the test uses 0.5. How many units die depends on
# both, so compare the effect, not the percentages.

# %% nbgrader={"grade": true, "grade_id": "test_high_lr_dead", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import nnkit
import torch
import torch.nn as nn
import torch.nn.functional as F

def dead_fraction_by_gradient(state_dict):
    """Fraction of the hidden units whose incoming weights and bias get exactly zero gradient from the loss
    on the whole training set, for make_mlp("relu", ...) with the given parameters."""
    x_train, y_train, _, _ = map(torch.from_numpy, nnkit.data.load_mnist1d())
    model = make_mlp("relu", seed=0)
    model.load_state_dict(state_dict)
    F.cross_entropy(model(x_train), y_train).backward()
    hidden = [m for m in model if isinstance(m, nn.Linear)][:-1]
    dead = [(torch.cat([m.weight.grad, m.bias.grad[:, None]], dim=1) == 0).all(dim=1) for m in hidden]
    return torch.cat(dead).float().mean().item()

device = nnkit.pick_device()
normal = dead_fraction_by_gradient(train_mlp("relu", lr=0.05, epochs=5, device=device, seed=0)["state_dict"])
high = dead_fraction_by_gradient(train_mlp("relu", lr=0.5, epochs=5, device=device, seed=0)["state_dict"])
assert high > normal + 0.1, \
    (f"expected clearly more dead units with lr=0.5 than with lr=0.05, got {high:.3f} vs {normal:.3f} "
     "(fractions of the 200 hidden units). Check that train_mlp uses SGD with momentum 0.9 and the given lr, "
     "and returns the trained model's state_dict.")
### BEGIN HIDDEN TESTS
for seed in (1, 2):
    normal = dead_fraction_by_gradient(train_mlp("relu", lr=0.05, epochs=5, device=device, seed=seed)["state_dict"])
    high = dead_fraction_by_gradient(train_mlp("relu", lr=0.5, epochs=5, device=device, seed=seed)["state_dict"])
    assert high > normal + 0.1, f"seed {seed}: lr=0.5 left {high:.3f} of the units dead, lr=0.05 {normal:.3f}"
### END HIDDEN TESTS
print("high learning rate: tests passed")

# %% [markdown] nbgrader={"grade": false, "grade_id": "compare_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 9. Comparing activations (optional, not graded)
#
# The two cells below are optional: nothing is graded and no other cell needs them. The first trains the same
# network with each activation, with the same seed, learning rate and number of epochs, then trains the ReLU
# network at several learning rates, and measures the dead units of every trained network on the whole
# training set with your `DeadUnitMonitor`. The second plots the losses. Run them, read the numbers and the
# curves, and answer for yourself:
#
# * Which activation trains fastest in the first epochs, and which slowest? Relate the slowest one to its
#   saturation and to the sign of its outputs.
# * At which learning rate do ReLU units start to die, and what happens to the loss and the accuracy then?
# * Why is the dead fraction of Leaky ReLU, ELU, tanh and sigmoid always zero in this table?
#
# These are single runs with one seed on one small data set: differences of a point or two in accuracy are
# within seed-to-seed noise, so do not read much into them. Every network here starts from PyTorch's default
# initialization; the chapter page gives each activation its own initial scale, which is fairer to tanh and
# the sigmoid.

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "compare_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
def dead_fractions(activation, state_dict):
    """{layer name: dead_unit_fraction} of a trained make_mlp network over the whole training set."""
    x_train = torch.from_numpy(nnkit.data.load_mnist1d()[0])
    model = make_mlp(activation, seed=0)
    model.load_state_dict(state_dict)
    model.eval()
    monitor = DeadUnitMonitor(model, layer_types=(ACTIVATIONS[activation],))
    with torch.no_grad():
        model(x_train)
    monitor.remove()
    return {name: values[0] for name, values in monitor.history().items()}


device = nnkit.pick_device()
print(f"training on {device}\n")
start = time.perf_counter()

runs = {name: train_mlp(name, lr=0.05, epochs=10, device=device, seed=0) for name in ACTIVATIONS}
print(f"{'activation':<12} {'loss ep 1':>9} {'loss ep 10':>10} {'test acc':>8}   dead units per layer")
for name, r in runs.items():
    dead = ", ".join(f"{v:.2f}" for v in dead_fractions(name, r["state_dict"]).values())
    print(f"{name:<12} {r['loss_history'][0]:>9.3f} {r['loss_history'][-1]:>10.3f} {r['test_accuracy']:>8.3f}   {dead}")

print(f"\n{'ReLU, lr':<12} {'loss ep 1':>9} {'loss ep 6':>10} {'test acc':>8}   dead units per layer")
lr_runs = {lr: train_mlp("relu", lr=lr, epochs=6, device=device, seed=0) for lr in (0.01, 0.05, 0.2, 0.5)}
for lr, r in lr_runs.items():
    dead = ", ".join(f"{v:.2f}" for v in dead_fractions("relu", r["state_dict"]).values())
    print(f"{lr:<12} {r['loss_history'][0]:>9.3f} {r['loss_history'][-1]:>10.3f} {r['test_accuracy']:>8.3f}   {dead}")
print(f"\n{time.perf_counter() - start:.1f} s")

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "plot_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for name, r in runs.items():
    axes[0].plot(range(1, len(r["loss_history"]) + 1), r["loss_history"], label=name)
axes[0].set(title="Activations (lr = 0.05)", xlabel="epoch", ylabel="mean training loss")
for lr, r in lr_runs.items():
    axes[1].plot(range(1, len(r["loss_history"]) + 1), r["loss_history"], label=f"lr = {lr}")
axes[1].set(title="ReLU at several learning rates", xlabel="epoch")
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown] nbgrader={"grade": false, "grade_id": "refs", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## References
#
# * X. Glorot, A. Bordes, Y. Bengio. *Deep sparse rectifier neural networks.* AISTATS 2011 (ReLU in deep networks).
# * A. L. Maas, A. Y. Hannun, A. Y. Ng. *Rectifier nonlinearities improve neural network acoustic models.*
#   ICML Workshop on Deep Learning for Audio, Speech and Language Processing, 2013 (Leaky ReLU).
# * K. He, X. Zhang, S. Ren, J. Sun. *Delving deep into rectifiers.* ICCV 2015 (PReLU).
# * D.-A. Clevert, T. Unterthiner, S. Hochreiter. *Fast and accurate deep network learning by exponential
#   linear units (ELUs).* ICLR 2016.
# * I. Goodfellow, D. Warde-Farley, M. Mirza, A. Courville, Y. Bengio. *Maxout networks.* ICML 2013.
# * S. Greydanus. *Scaling down deep learning* (MNIST-1D), 2020.
# * I. Sutskever, J. Martens, G. Dahl, G. Hinton. *On the importance of initialization and momentum in deep
#   learning.* ICML 2013 (momentum in the form v ← μv − lr·g).
