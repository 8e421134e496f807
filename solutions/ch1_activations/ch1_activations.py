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
# 3. **PyTorch**: record that fraction during training with forward hooks, and compare activations
#    on MNIST-1D.
#
# Every layer follows the convention of chapter 0:
#
# * `*_forward(x, ...)` returns `(out, cache)`, where `cache` holds whatever the backward pass needs;
# * `*_backward(dout, cache)` receives the upstream gradient $\partial L/\partial \text{out}$ (same
#   shape as `out`) and returns the gradient of the loss with respect to each input of the forward pass.
#
# Write vectorized code: no Python loop over examples or features. Keep the input's dtype (the
# gradient checks run in `float64`). Each graded cell shows some of its tests; more tests, with
# random shapes and values compared against PyTorch, run when your notebook is graded.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
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
# $$\sigma(x) = \frac{1}{1 + e^{-x}}, \qquad \frac{d\sigma}{dx} = \sigma(x)\,\bigl(1 - \sigma(x)\bigr).$$
#
# The derivative is largest at $x = 0$, where it is $1/4$, and vanishes as $|x|$ grows: a
# *saturated* unit passes almost no gradient back. The outputs lie in $(0, 1)$, so they are always
# positive (not zero-centered).
#
# **Numerical stability.** For $x = -1000$ the textbook formula computes $e^{1000}$, which
# overflows. For $x < 0$ use the equivalent form $\sigma(x) = \frac{e^{x}}{1 + e^{x}}$, where the
# exponential is at most $1$. Your `sigmoid_forward` must not overflow (nor warn) for any finite input.
# The backward pass can reuse the forward output, so cache that.

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
            hint="dx = dout * sigma(x) * (1 - sigma(x))")

# Stability: no overflow at +-1000 (np.errstate turns a silent overflow into an error).
x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
try:
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, _ = sigmoid_forward(x)
except FloatingPointError as err:
    raise AssertionError(f"sigmoid_forward overflows for large |x| ({err}). "
                         "Hint: for x < 0 compute exp(x) / (1 + exp(x)) instead.") from None
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
out, _ = sigmoid_forward(x32)
check_array(out, torch.sigmoid(torch.from_numpy(x32)).numpy(), "sigmoid_forward on float32 input",
            rtol=1e-5, atol=1e-6, dtype=np.float32, hint="keep the input's dtype")
### END HIDDEN TESTS
print("sigmoid: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "tanh_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. Tanh
#
# $$\tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}} = 2\sigma(2x) - 1, \qquad
# \frac{d \tanh}{dx} = 1 - \tanh^2(x).$$
#
# Tanh is a rescaled sigmoid: zero-centered, with outputs in $(-1, 1)$ and a slope of $1$ at the origin,
# but it saturates just the same. `np.tanh` is already stable for large $|x|$.

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
            "tanh_backward dx", dtype=np.float64, hint="dx = dout * (1 - tanh(x)**2)")

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
### END HIDDEN TESTS
print("tanh: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "relu_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. ReLU, Leaky ReLU and PReLU
#
# These three are piecewise linear with a kink at $0$:
#
# | | forward | $\partial\,\text{out} / \partial x$ |
# |---|---|---|
# | ReLU | $\max(0, x)$ | $1$ if $x > 0$, else $0$ |
# | Leaky ReLU (Maas et al., 2013) | $x$ if $x > 0$, else $\alpha x$ (default $\alpha = 0.01$) | $1$ if $x > 0$, else $\alpha$ |
# | PReLU (He et al., 2015) | $x_{nd}$ if $x_{nd} > 0$, else $\alpha_d\, x_{nd}$ | $1$ if $x_{nd} > 0$, else $\alpha_d$ |
#
# **The value at the kink.** None of them is differentiable at $x = 0$; any slope between the left and right
# derivative is a valid *subgradient*. We use the same convention as PyTorch: **at exactly $0$, take the
# negative-side slope**. So ReLU passes gradient $0$ at $x = 0$, Leaky ReLU passes $\alpha$ and PReLU $\alpha_d$.
# Write the test for the positive branch as `x > 0`, not `x >= 0`.
#
# **PReLU** learns its slope: here `x` has shape `(N, D)` and `alpha` has shape `(D,)`, one slope per feature
# (in convolutional layers He et al. learn one slope per channel, or a single slope for the whole layer).
# Its backward pass returns the gradient with respect to both inputs. A slope $\alpha_d$ is shared by all $N$ examples, so its gradient sums over them:
#
# $$\frac{\partial L}{\partial \alpha_d} = \sum_{n=1}^{N} \frac{\partial L}{\partial\,\text{out}_{nd}}\;
# x_{nd}\; \mathbb{1}[x_{nd} \le 0].$$
#
# (The form $\max(\alpha x, x)$ you may see for Leaky ReLU is equal to the definition above only when $\alpha \le 1$.)

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
    dx = dout * np.where(x > 0, 1.0, alpha)
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
            hint="the gradient passes where x > 0 and is 0 elsewhere, including at x == 0 exactly")

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
            hint="slope 1 where x > 0, alpha where x <= 0 (so alpha at x == 0, as in PyTorch)")
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
### END HIDDEN TESTS
print("leaky_relu: tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_prelu", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
import torch.nn.functional as F
from nnkit.gradcheck import numerical_grad_array
from nnkit.testing import check_array, check_grad

x = np.array([[-1.0, 2.0], [0.0, -3.0]])
alpha = np.array([0.1, 0.5])
out, cache = prelu_forward(x, alpha)
check_array(out, np.array([[-0.1, 2.0], [0.0, -1.5]]), "prelu_forward(x, alpha)", dtype=np.float64,
            hint="feature d (column d) uses slope alpha[d]")
dx, dalpha = prelu_backward(np.ones((2, 2)), cache)
check_array(dx, np.array([[0.1, 1.0], [0.1, 0.5]]), "prelu_backward dx", dtype=np.float64)
check_array(dalpha, np.array([-1.0, -3.0]), "prelu_backward dalpha", dtype=np.float64,
            hint="dalpha[d] sums dout * x over the examples where x <= 0; its shape is (D,)")

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
for n, d in [(1, 1), (7, 4), (16, 9)]:
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
# $$f(x) = \begin{cases} x & x > 0 \\ \alpha\,(e^{x} - 1) & x \le 0 \end{cases}, \qquad
# \frac{df}{dx} = \begin{cases} 1 & x > 0 \\ \alpha\, e^{x} = f(x) + \alpha & x \le 0. \end{cases}$$
#
# Negative inputs saturate smoothly towards $-\alpha$, which pushes the mean activation closer to zero than
# ReLU does. With $\alpha = 1$ the derivative is continuous at $0$; for other $\alpha$ there is a kink, and we
# again take the negative-side slope there ($\alpha$ at $x = 0$, as PyTorch does).
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
            "elu_backward dx (alpha=2)", dtype=np.float64, hint="for x <= 0 the slope is alpha * exp(x)")
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
# ReLU of $x W_1 + b_1$ is the special case $W_2 = 0, b_2 = 0$, and Leaky ReLU (with $\alpha < 1$) is
# $W_2 = \alpha W_1, b_2 = \alpha b_1$. The price is twice the parameters per unit. (Goodfellow et al. allow
# $k$ pieces; we use $k = 2$.)
#
# **Backward.** The gradient of each output entry goes entirely to the piece that won it. Let
# $m_{nh} = \mathbb{1}\bigl[z^{(1)}_{nh} \ge z^{(2)}_{nh}\bigr]$ (ties go to the first piece: a valid
# subgradient; PyTorch's `torch.maximum` splits ties evenly instead, which random inputs never hit). Then with
# $G = \partial L / \partial\,\text{out}$,
#
# $$\frac{\partial L}{\partial z^{(1)}} = G \odot m, \quad \frac{\partial L}{\partial z^{(2)}} = G \odot (1 - m), \quad
# \frac{\partial L}{\partial x} = \frac{\partial L}{\partial z^{(1)}} W_1^{\top} + \frac{\partial L}{\partial z^{(2)}} W_2^{\top},$$
#
# $$\frac{\partial L}{\partial W_k} = x^{\top} \frac{\partial L}{\partial z^{(k)}}, \qquad
# \frac{\partial L}{\partial b_k} = \sum_{n} \frac{\partial L}{\partial z^{(k)}_{n\cdot}}.$$

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
                hint="each output's gradient goes only to the piece that won it")

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
# Write `dead_unit_fraction(h)`: given the post-activation outputs `h` of a layer for a batch, shape `(N, H)`
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
# * `DeadUnitMonitor(model, layer_types=(nn.ReLU,))` registers a forward hook on every submodule of `model`
#   that is an instance of one of `layer_types` (walk `model.named_modules()`).
# * Each time such a module runs, its hook appends `dead_unit_fraction` of that module's output (as a NumPy
#   array of shape `(N, H)`: detach it and move it to the CPU first) to that layer's list.
# * `history()` returns a dict mapping each monitored module's name (as given by `named_modules()`, e.g. `"1"`
#   or `"encoder.3"`) to the list of fractions recorded so far, one per forward pass, in order. Layers that
#   have not run yet map to an empty list.
# * `remove()` removes every hook; forward passes after that record nothing.
#
# Hooks only see modules. Activations called as functions inside a `forward` method (`F.relu(x)`) are
# invisible to them, which is why the models here use `nn.ReLU()` layers. The provided function
# `monitor_forward_passes` below shows how the monitor is meant to be used.

# %% nbgrader={"grade": false, "grade_id": "monitor_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
class DeadUnitMonitor:
    """Records the dead-unit fraction of selected layers on every forward pass."""

    def __init__(self, model, layer_types=(nn.ReLU,)):
        """Registers a forward hook on every submodule of model that is one of layer_types."""
        ### BEGIN SOLUTION
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
            self._history[name].append(dead_unit_fraction(h))
        return hook
        ### END SOLUTION

    def history(self):
        """Returns {layer name: [fraction for each forward pass so far]}."""
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
def monitor_forward_passes(model, batches, layer_types=(nn.ReLU,)):
    """Runs each batch through model (without gradients) while a DeadUnitMonitor is attached,
    removes the monitor, then runs the first batch once more.

    Returns (history, outputs, hooks_left): the monitor's history() at the end, the model's outputs
    on the monitored passes, and the number of forward hooks still registered anywhere in model.
    The tests below use it (the grader may call your code from another process, so the model, the
    monitor and the forward passes have to stay together); you can use it to try your monitor.
    """
    monitor = DeadUnitMonitor(model, layer_types=layer_types)
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
record, outputs, _ = monitor_forward_passes(model, batches)
assert isinstance(record, dict), f"history() should return a dict, got {type(record).__name__}"
assert sorted(record) == ["1", "3"], \
    f"history() should have one entry per nn.ReLU, named '1' and '3' as in named_modules(); got keys {sorted(record)}"
check_close(record["1"], [0.5, 0.75], "dead fractions of ReLU layer '1' over two forward passes",
            hint="one value per forward pass, in order; units 2 and 3 always dead, unit 0 dead in pass 2")
check_close(record["3"], [1 / 3, 1 / 3], "dead fractions of ReLU layer '3' over two forward passes")

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
record, _, _ = monitor_forward_passes(model, batches)
names = [name for name, m in model.named_modules() if isinstance(m, nn.ReLU)]
assert sorted(record) == sorted(names), f"monitored layers: expected {sorted(names)}, got {sorted(record)}"
for name, fraction in zip(names, planted):
    check_close(record[name], [fraction] * 3, f"dead fractions of ReLU layer {name!r} over three passes")

record, _, _ = monitor_forward_passes(model, [torch.zeros(2, 5)], layer_types=(nn.Tanh,))
assert sorted(record) == ["1"], f"layer_types=(nn.Tanh,) should monitor only layer '1'; got {sorted(record)}"
check_close(record["1"], [planted[0]], "dead fraction of the tanh layer '1' (tanh(0) = 0)")
### END HIDDEN TESTS
print("DeadUnitMonitor counts: tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_monitor_remove", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
record, _, hooks_left = monitor_forward_passes(model, [torch.randn(4, 3), torch.randn(6, 3)])
counts = {name: len(values) for name, values in record.items()}
assert counts == {"1": 2, "3": 2}, \
    (f"two forward passes with the monitor attached, then one after remove(): each layer should hold "
     f"2 values, got {counts}")
assert hooks_left == 0, f"remove() left {hooks_left} forward hook(s) registered on the model"
### BEGIN HIDDEN TESTS
model = nn.Sequential(nn.Sequential(nn.Linear(3, 5), nn.ReLU()), nn.Tanh(),
                      nn.Sequential(nn.Linear(5, 4), nn.Sequential(nn.ReLU(), nn.Tanh())))
record, _, hooks_left = monitor_forward_passes(model, [torch.randn(2, 3)] * 3, layer_types=(nn.ReLU, nn.Tanh))
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
# 4000 for training and 1000 for testing, generated on your machine by `nnkit.data.load_mnist1d()`.
# The cell below gives you the model: `make_mlp(activation, seed)` builds a 40–100–100–10 MLP whose
# hidden activations are modules (so your monitor can see them), initialized from `seed`.
#
# Write `train_mlp(activation, lr, epochs, device, seed, batch_size=100)`:
#
# 1. Load the data with `nnkit.data.load_mnist1d()` and build the model with `make_mlp(activation, seed)`.
# 2. Move the model and the data to `device`. The data set is small, so keep all of it on the device and
#    slice minibatches there. Code written this way runs unchanged on a CPU, a CUDA GPU or Apple's MPS.
# 3. Train for `epochs` epochs with `torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)` and the
#    cross-entropy loss, on minibatches of `batch_size` examples, in an order reshuffled every epoch by a
#    `torch.Generator` seeded with `seed` (so a run is reproducible).
# 4. Return a dict with
#    * `"loss_history"`: a list of `epochs` Python floats, the mean training loss of each epoch
#      (the average of the minibatch losses, weighted by their sizes);
#    * `"test_accuracy"`: a Python float, the accuracy of the trained model on the test set;
#    * `"dead_fractions"`: a dict {layer name: float}, the `dead_unit_fraction` of each activation layer of
#      the trained model over the **whole training set** (one forward pass with a `DeadUnitMonitor` whose
#      `layer_types` is the type of the activation module, removed afterwards).
#
# Evaluate in `model.eval()` mode under `torch.no_grad()`. Calling `.item()` on every minibatch loss forces
# the GPU to wait for the CPU; summing the detached losses on the device and reading the total once per epoch
# does not.

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
             "dead_fractions": {layer name: float}}.
    """
    ### BEGIN SOLUTION
    from nnkit.data import load_mnist1d

    device = torch.device(device)
    x_train, y_train, x_test, y_test = load_mnist1d()
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
        monitor = DeadUnitMonitor(model, layer_types=(ACTIVATIONS[activation],))
        model(x_train)
        monitor.remove()
        test_accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    dead_fractions = {name: values[0] for name, values in monitor.history().items()}
    return {"loss_history": loss_history, "test_accuracy": test_accuracy, "dead_fractions": dead_fractions}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_train_mlp", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import nnkit

device = nnkit.pick_device()
result = train_mlp("relu", lr=0.05, epochs=3, device=device, seed=0)
assert isinstance(result, dict), f"train_mlp should return a dict, got {type(result).__name__}"
missing = {"loss_history", "test_accuracy", "dead_fractions"} - set(result)
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
dead = result["dead_fractions"]
assert isinstance(dead, dict) and sorted(dead) == ["1", "3"], \
    f"dead_fractions should map the two activation layers '1' and '3' to a number, got {dead!r}"
assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in dead.values()), \
    f"dead fractions should be floats in [0, 1], got {dead}"
### BEGIN HIDDEN TESTS
again = train_mlp("relu", lr=0.05, epochs=3, device=device, seed=0)
assert all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(again["loss_history"], losses)), \
    f"two runs with the same seed should give the same losses: {losses} vs {again['loss_history']}"
other = train_mlp("relu", lr=0.05, epochs=3, device=device, seed=1)
assert other["loss_history"] != losses, "different seeds gave identical losses: is seed used?"
for name in ["tanh", "leaky_relu", "sigmoid", "elu"]:
    r = train_mlp(name, lr=0.05, epochs=2, device=device, seed=3, batch_size=200)
    h = r["loss_history"]
    assert len(h) == 2 and all(math.isfinite(v) for v in h), f"{name}: bad loss_history {h}"
    assert h[1] < h[0], f"{name}: the loss did not go down over two epochs: {h}"
    assert sorted(r["dead_fractions"]) == ["1", "3"], \
        f"{name}: dead_fractions should cover the {name} layers '1' and '3', got {r['dead_fractions']}"
### END HIDDEN TESTS
print("train_mlp: tests passed")

# %% [markdown] nbgrader={"grade": false, "grade_id": "high_lr_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Too high a learning rate kills ReLUs
#
# With momentum 0.9, SGD with `lr=0.5` takes steps roughly ten times larger than `lr=0.05`. On this
# network and data, the large steps push many units to a state where they are negative on every training
# example. We measured it over 25 seeds: after 5 epochs, `lr=0.05` left no dead unit in either hidden layer,
# while `lr=0.5` left between 14.5% and 29.5% of the units dead (averaged over the two layers). At the high
# rate training is chaotic: the exact fraction changes with the order of floating-point additions (one CPU
# thread or two, CPU or GPU), the effect does not. The test below checks it with fixed seeds, asking for a
# difference of at least 10 percentage points.

# %% nbgrader={"grade": true, "grade_id": "test_high_lr_dead", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import nnkit

device = nnkit.pick_device()
normal = train_mlp("relu", lr=0.05, epochs=5, device=device, seed=0)["dead_fractions"]
high = train_mlp("relu", lr=0.5, epochs=5, device=device, seed=0)["dead_fractions"]
mean_normal = sum(normal.values()) / len(normal)
mean_high = sum(high.values()) / len(high)
assert mean_high > mean_normal + 0.1, \
    (f"expected clearly more dead units with lr=0.5 than with lr=0.05, got {high} vs {normal}. "
     "Check that train_mlp uses SGD with momentum 0.9 and that dead_fractions are measured on the whole training set.")
### BEGIN HIDDEN TESTS
for seed in (1, 2):
    normal = train_mlp("relu", lr=0.05, epochs=5, device=device, seed=seed)["dead_fractions"]
    high = train_mlp("relu", lr=0.5, epochs=5, device=device, seed=seed)["dead_fractions"]
    assert sum(high.values()) / 2 > sum(normal.values()) / 2 + 0.1, \
        f"seed {seed}: lr=0.5 gave dead fractions {high}, lr=0.05 gave {normal}"
### END HIDDEN TESTS
print("high learning rate: tests passed")

# %% [markdown] nbgrader={"grade": false, "grade_id": "compare_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 9. Comparing activations
#
# The cell below trains the same network with each activation, with the same seed, learning rate and number
# of epochs, and then trains the ReLU network at several learning rates. Nothing here is graded: run it, read
# the numbers and the curves, and answer for yourself:
#
# * Which activation trains fastest in the first epochs, and which slowest? Relate the slowest one to its
#   saturation and to the sign of its outputs.
# * At which learning rate do ReLU units start to die, and what happens to the loss and the accuracy then?
# * Why is the dead fraction of Leaky ReLU, ELU, tanh and sigmoid always zero in this table?
#
# These are single runs with one seed on one small data set: differences of a point or two in accuracy are
# within seed-to-seed noise, so do not read much into them.

# %% nbgrader={"grade": false, "grade_id": "compare_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
import time

device = nnkit.pick_device()
print(f"training on {device}\n")
start = time.perf_counter()

runs = {name: train_mlp(name, lr=0.05, epochs=15, device=device, seed=0) for name in ACTIVATIONS}
print(f"{'activation':<12} {'loss ep 1':>9} {'loss ep 15':>10} {'test acc':>8}   dead units per layer")
for name, r in runs.items():
    dead = ", ".join(f"{v:.2f}" for v in r["dead_fractions"].values())
    print(f"{name:<12} {r['loss_history'][0]:>9.3f} {r['loss_history'][-1]:>10.3f} {r['test_accuracy']:>8.3f}   {dead}")

print(f"\n{'ReLU, lr':<12} {'loss ep 1':>9} {'loss ep 8':>10} {'test acc':>8}   dead units per layer")
lr_runs = {lr: train_mlp("relu", lr=lr, epochs=8, device=device, seed=0) for lr in (0.01, 0.05, 0.2, 0.5)}
for lr, r in lr_runs.items():
    dead = ", ".join(f"{v:.2f}" for v in r["dead_fractions"].values())
    print(f"{lr:<12} {r['loss_history'][0]:>9.3f} {r['loss_history'][-1]:>10.3f} {r['test_accuracy']:>8.3f}   {dead}")
print(f"\n{time.perf_counter() - start:.1f} s")

# %% nbgrader={"grade": false, "grade_id": "plot_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
import matplotlib.pyplot as plt

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
