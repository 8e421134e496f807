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
# # Exercise 3: Weight initialization
#
# Before the first update, the weights alone decide how large the signals in a network are: the
# activations on the way forward and the gradients on the way back. In this exercise you write the
# initializers of `torch.nn.init` yourself, in NumPy, and then measure what they do to deep networks.
#
# 1. **Fans and gains**: `fan_in_fan_out` for linear and convolutional weights, and `calculate_gain`.
# 2. **Initializers**: `init_weights` for zeros, constants, plain normal draws, Xavier (Glorot) and
#    Kaiming (He), normal and uniform.
# 3. **Signals through depth**: `deep_forward`, `forward_stats` and `backward_stats` follow the activations
#    and the gradients through a deep MLP, layer by layer.
# 4. **PyTorch**: `apply_init` initializes a model with `torch.nn.init` through `model.apply`, and
#    `train_deep_mlp` trains a 10-layer MLP on MNIST-1D, on the GPU if there is one.
#
# Weights use PyTorch's layout throughout: a fully connected layer from $n_\text{in}$ to $n_\text{out}$
# units has a weight of shape `(n_out, n_in)` and computes `x @ W.T`; a convolution has a weight of shape
# `(out_channels, in_channels, *kernel_size)`.
#
# Each graded cell shows some of its tests; more tests, with random shapes compared against
# `torch.nn.init`, run when your notebook is graded.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import nnkit
from nnkit.testing import check_array, check_scalar

np.set_printoptions(precision=4, suppress=True)
# The networks here are small: on a CPU one thread is faster than two that wait for each other.
torch.set_num_threads(1)
print("torch", torch.__version__, "| device for training:", nnkit.pick_device())


# %% [markdown] nbgrader={"grade": false, "grade_id": "symmetry_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. Why the weights must be random, and how large they should be
#
# **Symmetry.** If every weight of a layer starts at the same value, every unit of that layer computes
# the same function of the same input, receives the same gradient, and takes the same update: the units
# stay identical forever, and a layer of 64 units is no better than a layer of one. With all weights
# zero it is worse still: in a tanh or ReLU network every hidden unit outputs $0$, every hidden gradient is
# exactly zero, and only the output biases learn. Such a network is sometimes said to be "a linear model";
# it is less than that, since its output is the same for every input. Random weights break the symmetry. Biases can start at zero, because the random
# weights already make the units differ.
#
# **Scale.** Take one unit of a layer without bias, $y = \sum_{i=1}^{n} w_i x_i$, and assume
#
# * the weights $w_i$ are independent, identically distributed, with mean $0$ and variance
#   $\operatorname{Var}(w)$;
# * the weights are independent of the inputs, and the inputs $x_i$ are identically distributed
#   (they need not be independent of each other).
#
# Then $\mathbb E[y] = 0$, the terms $w_i x_i$ are uncorrelated
# ($\mathbb E[w_i x_i w_j x_j] = \mathbb E[w_i]\,\mathbb E[w_j]\,\mathbb E[x_i x_j] = 0$ for $i \ne j$), and
#
# $$\operatorname{Var}(y) = \sum_{i=1}^{n} \mathbb E[w_i^2]\,\mathbb E[x_i^2]
# = n \operatorname{Var}(w)\, \mathbb E[x^2]
# \;\overset{\mathbb E[x] = 0}{=}\; n \operatorname{Var}(w) \operatorname{Var}(x).$$
#
# So a layer multiplies the variance of the signal by $n \operatorname{Var}(w)$, and $L$ layers multiply it by
# the product of $L$ such factors: slightly too small weights make it vanish exponentially with depth,
# slightly too large ones make it explode.
#
# * **Forward pass, zero-mean activations.** $\operatorname{Var}(w) = 1/n_\text{in}$ keeps
#   $\operatorname{Var}(y) = \operatorname{Var}(x)$. This is the recommendation of LeCun et al. (1998),
#   standard deviation $n_\text{in}^{-1/2}$, made for inputs normalized to unit variance and their scaled
#   tanh, $f(x) = 1.7159 \tanh(2x/3)$. That function is not the identity near $0$ (its slope there is
#   $1.7159 \cdot 2/3 \approx 1.144$); its constants make $f(\pm 1) = \pm 1$, so that inputs of size about
#   $1$ come out with about the same size.
# * **Backward pass.** The gradient with respect to an input, $\partial L/\partial x_i = \sum_j w_{ji}\,
#   \partial L / \partial y_j$, is a sum over the $n_\text{out}$ units the input feeds, so the same argument
#   gives $\operatorname{Var}(\partial L/\partial x) = n_\text{out} \operatorname{Var}(w)
#   \operatorname{Var}(\partial L/\partial y)$, and asks for $\operatorname{Var}(w) = 1/n_\text{out}$.
# * **Xavier / Glorot** (Glorot & Bengio, 2010) compromise between the two:
#   $\operatorname{Var}(w) = \dfrac{2}{n_\text{in} + n_\text{out}}$.
# * **Kaiming / He** (He et al., 2015): after a ReLU, $x = \max(0, y')$ with $y'$ symmetric around $0$,
#   so $\mathbb E[x^2] = \tfrac12 \operatorname{Var}(y')$: the mean of $x$ is *not* zero, which is why the
#   derivation keeps $\mathbb E[x^2]$. Then $\operatorname{Var}(y) = \tfrac12 n_\text{in}
#   \operatorname{Var}(w) \operatorname{Var}(y')$, and $\operatorname{Var}(w) = 2 / n_\text{in}$ keeps it
#   constant (or $2/n_\text{out}$ for the backward pass).
#
# Some course notes call $\operatorname{Var}(w) = 1/n_\text{in}$ "Xavier initialization". It is LeCun's rule;
# it agrees with Glorot & Bengio's only when $n_\text{in} = n_\text{out}$.
#
# **Uniform versions.** $\mathcal U(-a, a)$ has variance $a^2/3$, so a uniform initializer with standard
# deviation $\sigma$ draws from $\mathcal U(-\sqrt3\,\sigma, \sqrt3\,\sigma)$. Glorot & Bengio's "normalized
# initialization" is $\mathcal U\bigl(-\sqrt{6/(n_\text{in}+n_\text{out})},\ \sqrt{6/(n_\text{in}+n_\text{out})}\bigr)$.

# %% [markdown] nbgrader={"grade": false, "grade_id": "fans_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. Fans and gains
#
# **Fans.** For a convolution, one output value is a sum over `in_channels` × (kernel size) inputs, and one
# input value feeds `out_channels` × (kernel size) outputs (away from the borders, with stride 1). PyTorch
# therefore defines, for a weight of shape `(out, in, k_1, ..., k_d)` with receptive field
# $r = k_1 \cdots k_d$ ($r = 1$ for a linear layer):
#
# $$\text{fan\_in} = \text{in} \cdot r, \qquad \text{fan\_out} = \text{out} \cdot r.$$
#
# A weight with fewer than two dimensions has no fans (PyTorch raises `ValueError`).
#
# The formula reads the shape only. For a grouped convolution (`groups=g`) the weight has shape
# `(out, in/g, k...)`: the fan-in, $(\text{in}/g)\,r$, is right, but each input channel feeds only the
# $\text{out}/g$ output channels of its group, so the true fan-out is $\text{out}\cdot r/g$, and PyTorch's
# value overstates it by the factor $g$. Here you follow PyTorch's convention.
#
# **Gains.** PyTorch writes both families with a *gain* that depends on the nonlinearity:
#
# | initializer | standard deviation $\sigma$ | uniform bound |
# |---|---|---|
# | `xavier_normal_`, `xavier_uniform_` | $\text{gain} \cdot \sqrt{2 / (\text{fan\_in} + \text{fan\_out})}$ | $\sqrt 3\,\sigma$ |
# | `kaiming_normal_`, `kaiming_uniform_` | $\text{gain} / \sqrt{\text{fan}}$, fan = fan_in or fan_out (`mode`) | $\sqrt 3\,\sigma$ |
#
# `torch.nn.init.calculate_gain(nonlinearity, param=None)` gives: `"linear"` and `"sigmoid"`: $1$;
# `"tanh"`: $5/3$; `"relu"`: $\sqrt 2$; `"leaky_relu"` with negative slope $a$ (`param`, default $0.01$):
# $\sqrt{2/(1 + a^2)}$. The ReLU and Leaky ReLU values are He et al.'s calculation
# ($\mathbb E[x^2] = \tfrac12(1 + a^2)\operatorname{Var}(y')$ after a Leaky ReLU). The tanh value is not from
# Glorot & Bengio, who used gain 1: it is an empirical choice that compensates for tanh shrinking its
# input away from $0$. The sigmoid value is not derived at all: sigmoid outputs have mean $\tfrac12$, so the
# zero-mean argument does not apply.
#
# Write `fan_in_fan_out(shape)` and `calculate_gain(nonlinearity, param=None)` with plain Python (the
# point is to see the formulas, not to call `torch`). Return Python `int`s for the fans and a Python `float` for the gain; raise `ValueError` for a
# shape with fewer than two dimensions and for a nonlinearity not in the list above.

# %% nbgrader={"grade": false, "grade_id": "fans_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fan_in_fan_out(shape):
    """Fans of a weight of the given shape, in PyTorch's convention.

    shape: tuple (out, in) for a linear layer, (out, in, k_1, ..., k_d) for a convolution.
    Returns (fan_in, fan_out) as Python ints.
    """
    ### BEGIN SOLUTION
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"a weight needs at least 2 dimensions to have fans, got shape {shape}")
    receptive_field = 1
    for k in shape[2:]:
        receptive_field *= k
    return shape[1] * receptive_field, shape[0] * receptive_field
    ### END SOLUTION


def calculate_gain(nonlinearity, param=None):
    """The gain torch.nn.init.calculate_gain returns, as a Python float.

    nonlinearity: "linear", "sigmoid", "tanh", "relu" or "leaky_relu".
    param: the negative slope of "leaky_relu" (0.01 when None); ignored otherwise.
    """
    ### BEGIN SOLUTION
    if nonlinearity in ("linear", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_fans", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numbers
import numpy as np
import torch

cases = {  # shape: (fan_in, fan_out)
    (3, 5): (5, 3),                  # nn.Linear(5, 3).weight
    (128, 40): (40, 128),
    (8, 4, 3): (12, 24),             # nn.Conv1d(4, 8, kernel_size=3)
    (16, 3, 5, 5): (75, 400),        # nn.Conv2d(3, 16, kernel_size=5)
    (6, 2, 3, 1): (6, 18),           # a 3x1 kernel
    (4, 2, 3, 3, 3): (54, 108),      # nn.Conv3d(2, 4, kernel_size=3)
}
for shape, expected in cases.items():
    got = fan_in_fan_out(shape)
    assert isinstance(got, tuple) and len(got) == 2, \
        f"fan_in_fan_out({shape}) should return a tuple (fan_in, fan_out), got {got!r}"
    assert all(isinstance(v, numbers.Integral) for v in got), \
        f"fan_in_fan_out({shape}) should return integers, got {[type(v).__name__ for v in got]}"
    assert got == expected, (
        f"fan_in_fan_out({shape}) returned {got}, expected (fan_in, fan_out) = {expected}. "
        "Hint: the weight is (out, in, *kernel); both fans are multiplied by the kernel's size.")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(301)
for trial in range(12):
    ndim = int(rng.integers(2, 6))
    shape = tuple(int(s) for s in rng.integers(1, 9, size=ndim))
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    got = fan_in_fan_out(shape)
    assert tuple(got) == tuple(expected), \
        f"fan_in_fan_out({shape}) returned {got}, torch.nn.init computes {expected}"
assert tuple(fan_in_fan_out([7, 3])) == (3, 7), "fan_in_fan_out should accept a list as the shape"
got = fan_in_fan_out((16, 4, 3, 3))
assert all(isinstance(v, int) and not isinstance(v, bool) for v in got), \
    f"fan_in_fan_out should return Python ints, got {[type(v).__name__ for v in got]} (use int(...))"
from nnkit.testing import check_raises
for bad in [(5,), ()]:
    check_raises(lambda: fan_in_fan_out(bad), ValueError, f"fan_in_fan_out({bad})")
### END HIDDEN TESTS
print("fan_in_fan_out: tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_gain", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import math
import torch
from nnkit.testing import check_scalar

expected = {("linear", None): 1.0, ("sigmoid", None): 1.0, ("tanh", None): 5 / 3,
            ("relu", None): math.sqrt(2), ("leaky_relu", None): math.sqrt(2 / (1 + 0.01 ** 2)),
            ("leaky_relu", 0.2): math.sqrt(2 / 1.04), ("leaky_relu", 1.0): 1.0}
for (name, param), value in expected.items():
    got = calculate_gain(name, param)
    check_scalar(got, value, f"calculate_gain({name!r}, {param})", rtol=1e-12,
                 hint="see the table of gains above")
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(302)
for name in ["linear", "sigmoid", "tanh", "relu", "leaky_relu"]:
    check_scalar(calculate_gain(name), float(torch.nn.init.calculate_gain(name)),
                 f"calculate_gain({name!r}) against torch", rtol=1e-12)
for slope in rng.uniform(0.0, 3.0, size=6):
    check_scalar(calculate_gain("leaky_relu", float(slope)),
                 torch.nn.init.calculate_gain("leaky_relu", float(slope)),
                 f"calculate_gain('leaky_relu', {slope:.4f}) against torch", rtol=1e-12)
check_scalar(calculate_gain("tanh", 0.3), 5 / 3, "calculate_gain('tanh', 0.3): param is ignored", rtol=1e-12)
for name in ["linear", "relu", "leaky_relu"]:
    assert isinstance(calculate_gain(name), float), \
        f"calculate_gain({name!r}) should return a Python float, got {type(calculate_gain(name)).__name__}"
from nnkit.testing import check_raises
for bad in ["softmax", "ReLU", "gelu"]:
    check_raises(lambda: calculate_gain(bad), ValueError, f"calculate_gain({bad!r})")
### END HIDDEN TESTS
print("calculate_gain: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "init_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. The initializers
#
# Write `init_weights(shape, scheme, rng, mode="fan_in", gain=1.0, value=None, std=None)`. It returns a new
# `float64` array of the given shape, filled according to `scheme`:
#
# | `scheme` | distribution |
# |---|---|
# | `"zeros"` | all $0$ |
# | `"constant"` | all `value` |
# | `"normal"` | $\mathcal N(0, \texttt{std}^2)$ |
# | `"xavier_normal"`, `"xavier_uniform"` | standard deviation $\sigma = \text{gain}\cdot\sqrt{2/(\text{fan\_in} + \text{fan\_out})}$ |
# | `"kaiming_normal"`, `"kaiming_uniform"` | $\sigma = \text{gain}/\sqrt{\text{fan}}$, fan chosen by `mode` (`"fan_in"` or `"fan_out"`) |
#
# The `*_normal` schemes draw from $\mathcal N(0, \sigma^2)$ and the `*_uniform` ones from
# $\mathcal U(-\sqrt 3\,\sigma, \sqrt 3\,\sigma)$. As in PyTorch, the caller passes the gain: He
# initialization for ReLU is `init_weights(shape, "kaiming_normal", rng, gain=calculate_gain("relu"))`, and
# `gain=1` gives LeCun's $\operatorname{Var}(w) = 1/\text{fan\_in}$. `gain` and `mode` matter only for the
# Xavier and Kaiming schemes.
#
# Draw every random number from `rng`, a `np.random.Generator` (`rng.normal`, `rng.uniform`), never from
# `np.random`'s global state: then the same seed gives the same weights. Raise `ValueError` for an unknown
# scheme or mode.
#
# **How the tests judge a random array.** They cannot compare values, only statistics, and a statistic of a
# sample is itself random. The sample standard deviation of $N$ normal draws has a relative standard error of
# about $1/\sqrt{2N}$ (less for uniform draws); the tests allow **10 standard errors**, a deviation a correct
# initializer essentially never reaches, and use $N \ge 20\,000$, so the tolerance is at
# most 5%: a mistake such as using fan_out for fan_in, forgetting the $\sqrt 3$ or the gain is off by more.
# For a uniform initializer the largest $|w|$ must lie below the bound $a$ and above $a\,(1 - 20/N)$: $N$
# independent draws all miss the top $20/N$ of the range with probability $(1 - 20/N)^N \approx e^{-20}$.
# The helpers below compute these statistics; use them to check your own arrays.

# %% nbgrader={"grade": false, "grade_id": "stats_helpers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def sample_stats(w):
    """Mean, standard deviation, kurtosis E[(w - mean)^4] / std^4 and largest |w| of all entries of w.
    The kurtosis tells the shapes apart: 3 for a normal distribution, 1.8 for a uniform one."""
    w = np.asarray(w, dtype=np.float64).ravel()
    mean, std = w.mean(), w.std()
    kurtosis = np.mean((w - mean) ** 4) / std ** 4 if std > 0 else float("nan")
    return {"mean": float(mean), "std": float(std), "kurtosis": float(kurtosis), "max_abs": float(np.abs(w).max())}


def std_tolerance(n):
    """Relative tolerance for a sample std of n draws: 10 standard errors of about 1 / sqrt(2 n)."""
    return 10.0 / math.sqrt(2.0 * n)


def check_distribution(w, std, name, uniform, shape=None):
    """Assert that the array w looks like n draws of the stated distribution (see the text above)."""
    assert isinstance(w, np.ndarray), f"{name}: expected a numpy.ndarray, got {type(w).__name__}"
    if shape is not None:
        assert w.shape == tuple(shape), f"{name}: expected shape {tuple(shape)}, got {w.shape}"
    assert w.dtype == np.float64, f"{name}: expected dtype float64, got {w.dtype}"
    assert np.all(np.isfinite(w)), f"{name}: contains NaN or inf"
    n, s = w.size, sample_stats(w)
    tol = std_tolerance(n)
    assert abs(s["std"] / std - 1) < tol, (
        f"{name}: sample std {s['std']:.5g}, expected {std:.5g} (off by {100 * abs(s['std'] / std - 1):.1f}%, "
        f"tolerance {100 * tol:.1f}% for {n} draws)")
    assert abs(s["mean"]) < 10 * std / math.sqrt(n), f"{name}: sample mean {s['mean']:.3g} is not close to 0"
    kurt_tol = 10 * math.sqrt(24 / n)
    want_kurt = 1.8 if uniform else 3.0
    assert abs(s["kurtosis"] - want_kurt) < kurt_tol, (
        f"{name}: kurtosis {s['kurtosis']:.3f}, expected {want_kurt} for a "
        f"{'uniform' if uniform else 'normal'} distribution")
    if uniform:
        bound = math.sqrt(3) * std
        assert s["max_abs"] <= bound * (1 + 1e-9), \
            f"{name}: largest |w| is {s['max_abs']:.6g}, above the bound sqrt(3) * std = {bound:.6g}"
        assert s["max_abs"] >= bound * (1 - 20 / n), \
            f"{name}: largest |w| is {s['max_abs']:.6g}, expected draws up to the bound {bound:.6g}"


# %% nbgrader={"grade": false, "grade_id": "init_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def init_weights(shape, scheme, rng, mode="fan_in", gain=1.0, value=None, std=None):
    """A new float64 array of the given shape, initialized by `scheme` (see the table above).

    rng: a np.random.Generator, the only source of random numbers.
    mode: "fan_in" or "fan_out" (Kaiming schemes); gain: multiplies the std (Xavier and Kaiming);
    value: the constant of "constant"; std: the standard deviation of "normal".
    """
    ### BEGIN SOLUTION
    shape = tuple(int(s) for s in shape)
    if scheme == "zeros":
        return np.zeros(shape, dtype=np.float64)
    if scheme == "constant":
        return np.full(shape, float(value), dtype=np.float64)
    if scheme == "normal":
        return rng.normal(0.0, float(std), size=shape)
    family, _, distribution = scheme.partition("_")
    if family not in ("xavier", "kaiming") or distribution not in ("normal", "uniform"):
        raise ValueError(f"unknown scheme {scheme!r}")
    fan_in, fan_out = fan_in_fan_out(shape)
    if family == "xavier":
        sigma = gain * math.sqrt(2.0 / (fan_in + fan_out))
    else:
        if mode not in ("fan_in", "fan_out"):
            raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
        sigma = gain / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    if distribution == "normal":
        return rng.normal(0.0, sigma, size=shape)
    bound = math.sqrt(3.0) * sigma
    return rng.uniform(-bound, bound, size=shape)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_init_simple", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.testing import check_array

w = init_weights((3, 4), "zeros", np.random.default_rng(0))
check_array(w, np.zeros((3, 4)), "init_weights((3, 4), 'zeros')", dtype=np.float64)
w = init_weights((2, 3, 2), "constant", np.random.default_rng(0), value=0.5)
check_array(w, np.full((2, 3, 2), 0.5), "init_weights((2, 3, 2), 'constant', value=0.5)", dtype=np.float64)

# 250 * 200 = 50000 draws: the std is checked to 10 standard errors (3.2%).
w = init_weights((250, 200), "normal", np.random.default_rng(1), std=0.01)
check_distribution(w, 0.01, "init_weights((250, 200), 'normal', std=0.01)", uniform=False, shape=(250, 200))
w = init_weights((250, 200), "normal", np.random.default_rng(2), std=3.0)
check_distribution(w, 3.0, "init_weights((250, 200), 'normal', std=3.0)", uniform=False, shape=(250, 200))

# The generator is the only source of randomness: the same seed gives the same weights.
a = init_weights((20, 30), "normal", np.random.default_rng(7), std=1.0)
b = init_weights((20, 30), "normal", np.random.default_rng(7), std=1.0)
c = init_weights((20, 30), "normal", np.random.default_rng(8), std=1.0)
check_array(b, a, "two calls with generators of the same seed",
            hint="draw from rng (rng.normal, rng.uniform), not from np.random.randn or np.random.normal")
assert not np.allclose(a, c), "generators with different seeds gave the same weights: is rng used?"
### BEGIN HIDDEN TESTS
for seed, shape in enumerate([(7,), (5, 1), (3, 2, 4, 4)]):
    w = init_weights(shape, "constant", np.random.default_rng(seed), value=-1.25)
    check_array(w, np.full(shape, -1.25), f"constant on shape {shape}", dtype=np.float64)
    w = init_weights(shape, "zeros", np.random.default_rng(seed))
    check_array(w, np.zeros(shape), f"zeros on shape {shape}", dtype=np.float64)
w = init_weights((40, 25, 3, 3), "normal", np.random.default_rng(303), std=0.2)
check_distribution(w, 0.2, "normal on shape (40, 25, 3, 3)", uniform=False, shape=(40, 25, 3, 3))
w = init_weights((100, 200), "normal", np.random.default_rng(304), std=0.05, gain=7.0, mode="fan_out")
check_distribution(w, 0.05, "normal with gain and mode given (they must be ignored)", uniform=False)
from nnkit.testing import check_raises
for scheme, mode in [("orthogonal", "fan_in"), ("xavier", "fan_in"), ("kaiming_normal", "fan_avg"),
                     ("kaiming_uniform", "in")]:
    check_raises(lambda: init_weights((4, 5), scheme, np.random.default_rng(0), mode=mode), ValueError,
                 f"init_weights((4, 5), {scheme!r}, rng, mode={mode!r})")
### END HIDDEN TESTS
print("init_weights (zeros, constant, normal): tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_init_xavier", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np

# A linear weight (out=400, in=500): 200000 draws, tolerance 1.6%.
shape = (400, 500)
sigma = math.sqrt(2 / (500 + 400))
w = init_weights(shape, "xavier_normal", np.random.default_rng(10))
check_distribution(w, sigma, "xavier_normal on (400, 500)", uniform=False, shape=shape)
w = init_weights(shape, "xavier_uniform", np.random.default_rng(11))
check_distribution(w, sigma, "xavier_uniform on (400, 500)", uniform=True, shape=shape)
w = init_weights(shape, "xavier_uniform", np.random.default_rng(12), gain=5 / 3)
check_distribution(w, 5 / 3 * sigma, "xavier_uniform on (400, 500) with gain 5/3", uniform=True, shape=shape)

# A convolution weight (out=64, in=32, 5x5): fan_in = 800, fan_out = 1600; 51200 draws.
shape = (64, 32, 5, 5)
sigma = math.sqrt(2 / (800 + 1600))
w = init_weights(shape, "xavier_normal", np.random.default_rng(13))
check_distribution(w, sigma, "xavier_normal on the conv weight (64, 32, 5, 5)", uniform=False, shape=shape)
### BEGIN HIDDEN TESTS
import torch


def pooled(make, size, at_least=50000):
    """Enough independent draws of a small weight for a precise std: about at_least values."""
    reps = max(1, math.ceil(at_least / size))
    return np.concatenate([np.asarray(make(i)).ravel() for i in range(reps)])


rng = np.random.default_rng(305)
for trial in range(6):
    ndim = int(rng.choice([2, 3, 4]))
    shape = (int(rng.integers(4, 200)), int(rng.integers(2, 120))) + tuple(int(k) for k in rng.integers(1, 6, size=ndim - 2))
    gain = float(rng.uniform(0.5, 2.0))
    size = int(np.prod(shape))
    for kind in ["normal", "uniform"]:
        torch_init = getattr(torch.nn.init, f"xavier_{kind}_")
        ours = pooled(lambda i: init_weights(shape, f"xavier_{kind}", np.random.default_rng([305, trial, i]), gain=gain), size)
        theirs = pooled(lambda i: torch_init(torch.empty(shape, dtype=torch.float64), gain=gain,
                                              generator=torch.Generator().manual_seed(1000 * trial + i)).numpy(), size)
        s_ours, s_theirs = sample_stats(ours), sample_stats(theirs)
        rel = abs(s_ours["std"] / s_theirs["std"] - 1)
        assert rel < 10 / math.sqrt(ours.size), (
            f"xavier_{kind} on shape {shape} with gain {gain:.3f}: std {s_ours['std']:.5g}, "
            f"torch.nn.init gives {s_theirs['std']:.5g}")
        assert abs(s_ours["kurtosis"] - s_theirs["kurtosis"]) < 10 * math.sqrt(48 / ours.size), \
            f"xavier_{kind} on shape {shape}: the distribution's shape differs from torch.nn.init's"
        if kind == "uniform":
            assert abs(s_ours["max_abs"] / s_theirs["max_abs"] - 1) < 40 / ours.size + 1e-12, \
                f"xavier_uniform on shape {shape}: largest |w| {s_ours['max_abs']:.6g}, torch {s_theirs['max_abs']:.6g}"
    single = init_weights(shape, "xavier_normal", np.random.default_rng(trial))
    assert isinstance(single, np.ndarray) and single.shape == shape and single.dtype == np.float64, \
        f"xavier_normal on shape {shape}: got {type(single).__name__} {getattr(single, 'shape', None)} {getattr(single, 'dtype', None)}"
### END HIDDEN TESTS
print("init_weights (Xavier): tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_init_kaiming", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np

# Linear weight (out=300, in=600), He initialization for ReLU: std = sqrt(2 / 600).
shape = (300, 600)
gain = math.sqrt(2)
w = init_weights(shape, "kaiming_normal", np.random.default_rng(20), gain=gain)
check_distribution(w, gain / math.sqrt(600), "kaiming_normal on (300, 600), gain sqrt(2), fan_in",
                   uniform=False, shape=shape)
w = init_weights(shape, "kaiming_uniform", np.random.default_rng(21), gain=gain)
check_distribution(w, gain / math.sqrt(600), "kaiming_uniform on (300, 600), gain sqrt(2), fan_in",
                   uniform=True, shape=shape)
w = init_weights(shape, "kaiming_normal", np.random.default_rng(22), mode="fan_out", gain=gain)
check_distribution(w, gain / math.sqrt(300), "kaiming_normal on (300, 600), mode='fan_out'", uniform=False,
                   shape=shape)
w = init_weights(shape, "kaiming_normal", np.random.default_rng(23))
check_distribution(w, 1 / math.sqrt(600), "kaiming_normal on (300, 600), gain 1 (LeCun)", uniform=False, shape=shape)

# Conv weight (out=96, in=48, 3x3): fan_in = 432, fan_out = 864.
shape = (96, 48, 3, 3)
w = init_weights(shape, "kaiming_uniform", np.random.default_rng(24), gain=gain)
check_distribution(w, gain / math.sqrt(432), "kaiming_uniform on the conv weight (96, 48, 3, 3)", uniform=True,
                   shape=shape)
w = init_weights(shape, "kaiming_normal", np.random.default_rng(25), mode="fan_out", gain=gain)
check_distribution(w, gain / math.sqrt(864), "kaiming_normal on the conv weight, mode='fan_out'", uniform=False,
                   shape=shape)
### BEGIN HIDDEN TESTS
import torch


def pooled(make, size, at_least=50000):
    reps = max(1, math.ceil(at_least / size))
    return np.concatenate([np.asarray(make(i)).ravel() for i in range(reps)])


rng = np.random.default_rng(306)
for trial in range(6):
    ndim = int(rng.choice([2, 3, 4]))
    shape = (int(rng.integers(4, 200)), int(rng.integers(2, 120))) + tuple(int(k) for k in rng.integers(1, 6, size=ndim - 2))
    size = int(np.prod(shape))
    mode = str(rng.choice(["fan_in", "fan_out"]))
    nonlinearity, slope = [("relu", None), ("tanh", None), ("linear", None),
                           ("leaky_relu", float(rng.uniform(0, 1)))][trial % 4]
    gain = torch.nn.init.calculate_gain(nonlinearity, slope)
    for kind in ["normal", "uniform"]:
        torch_init = getattr(torch.nn.init, f"kaiming_{kind}_")
        ours = pooled(lambda i: init_weights(shape, f"kaiming_{kind}", np.random.default_rng([306, trial, i]),
                                             mode=mode, gain=gain), size)
        theirs = pooled(lambda i: torch_init(torch.empty(shape, dtype=torch.float64), a=slope or 0.0, mode=mode,
                                              nonlinearity=nonlinearity,
                                              generator=torch.Generator().manual_seed(2000 * trial + i)).numpy(), size)
        s_ours, s_theirs = sample_stats(ours), sample_stats(theirs)
        assert abs(s_ours["std"] / s_theirs["std"] - 1) < 10 / math.sqrt(ours.size), (
            f"kaiming_{kind} on shape {shape}, mode={mode}, gain of {nonlinearity}: std {s_ours['std']:.5g}, "
            f"torch.nn.init gives {s_theirs['std']:.5g}")
        assert abs(s_ours["kurtosis"] - s_theirs["kurtosis"]) < 10 * math.sqrt(48 / ours.size), \
            f"kaiming_{kind} on shape {shape}: the distribution's shape differs from torch.nn.init's"
        if kind == "uniform":
            assert abs(s_ours["max_abs"] / s_theirs["max_abs"] - 1) < 40 / ours.size + 1e-12, \
                f"kaiming_uniform on shape {shape}: largest |w| {s_ours['max_abs']:.6g}, torch {s_theirs['max_abs']:.6g}"
### END HIDDEN TESTS
print("init_weights (Kaiming): tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "depth_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. Signals through a deep network
#
# Now stack layers. A deep MLP without biases has weights $W_1, \dots, W_L$, $W_l$ of shape
# $(n_l, n_{l-1})$, and computes
#
# $$h_0 = x, \qquad h_l = f(h_{l-1} W_l^\top), \quad l = 1, \dots, L,$$
#
# with the same activation $f$ (`"tanh"`, `"relu"` or `"linear"`, the identity) after every layer.
#
# * `deep_forward(x, weights, activation)` returns the list $[h_1, \dots, h_L]$ (each of shape $(N, n_l)$).
# * `forward_stats(x, weights, activation)` returns `(means, stds)`, two arrays of shape $(L,)$: the mean and
#   the standard deviation of **all** entries of $h_l$ (NumPy's `np.mean`, `np.std`).
# * `backward_stats(x, weights, activation, dout)` backpropagates the upstream gradient
#   `dout` $= \partial \mathcal L/\partial h_L$ (shape $(N, n_L)$), i.e. the gradients of
#   $\mathcal L = \sum h_L \odot \text{dout}$, and returns an array $g$ of shape $(L,)$ where $g_{l}$ is the
#   standard deviation of $\partial \mathcal L / \partial h_{l}$ for $l = 0, \dots, L-1$: the gradient
#   arriving at the **input** of layer $l + 1$. So $g_0$ is the gradient with respect to $x$ and $g_{L-1}$
#   the one that enters the last layer.
#
# The backward pass through one layer: with $z_l = h_{l-1} W_l^\top$ and $h_l = f(z_l)$,
# $\partial \mathcal L/\partial z_l = \partial \mathcal L/\partial h_l \odot f'(z_l)$ and
# $\partial \mathcal L/\partial h_{l-1} = (\partial \mathcal L/\partial z_l)\, W_l$. For ReLU use
# $f'(z) = \mathbb 1[z > 0]$ (PyTorch's convention at $0$); for tanh, $f'(z) = 1 - \tanh^2(z)$.

# %% nbgrader={"grade": false, "grade_id": "depth_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def deep_forward(x, weights, activation):
    """h_l = f(h_{l-1} @ W_l.T) for l = 1..L, with h_0 = x.

    x: (N, n_0); weights: list of L arrays, W_l of shape (n_l, n_{l-1}); activation: "tanh", "relu" or "linear".
    Returns the list [h_1, ..., h_L].
    """
    ### BEGIN SOLUTION
    functions = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0), "linear": lambda z: z}
    if activation not in functions:
        raise ValueError(f"unknown activation {activation!r}")
    f = functions[activation]
    activations, h = [], x
    for w in weights:
        h = f(h @ w.T)
        activations.append(h)
    return activations
    ### END SOLUTION


def forward_stats(x, weights, activation):
    """(means, stds): arrays of shape (L,), the mean and std of all entries of each h_l."""
    ### BEGIN SOLUTION
    activations = deep_forward(x, weights, activation)
    return (np.array([h.mean() for h in activations]), np.array([h.std() for h in activations]))
    ### END SOLUTION


def backward_stats(x, weights, activation, dout):
    """Array g of shape (L,): g[l] = std of dLoss/dh_l for l = 0..L-1 (h_0 = x), where
    Loss = sum(h_L * dout) and dout has the shape of h_L."""
    ### BEGIN SOLUTION
    activations = deep_forward(x, weights, activation)
    stds = np.empty(len(weights))
    grad = dout
    for l in range(len(weights) - 1, -1, -1):
        h = activations[l]
        if activation == "tanh":
            grad = grad * (1.0 - h ** 2)
        elif activation == "relu":
            grad = grad * (h > 0)  # h > 0 exactly where the pre-activation is > 0
        grad = grad @ weights[l]
        stds[l] = grad.std()
    return stds
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_deep_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np
from nnkit.testing import check_array

# Hand-checkable: x = [1, -2], W_1 = identity, W_2 = [[1, 1]].
x = np.array([[1.0, -2.0]])
weights = [np.eye(2), np.array([[1.0, 1.0]])]
expected = {"relu": [[[1.0, 0.0]], [[1.0]]],
            "linear": [[[1.0, -2.0]], [[-1.0]]],
            "tanh": [[[np.tanh(1.0), np.tanh(-2.0)]], [[np.tanh(np.tanh(1.0) + np.tanh(-2.0))]]]}
for activation, want in expected.items():
    hs = deep_forward(x, weights, activation)
    assert isinstance(hs, list) and len(hs) == 2, \
        f"deep_forward with 2 weights should return a list of 2 arrays, got {type(hs).__name__} of length {len(hs)}"
    for l, (h, h_want) in enumerate(zip(hs, want), start=1):
        check_array(h, np.array(h_want), f"deep_forward(..., {activation!r}) h_{l}", dtype=np.float64)

# Layouts: W_l is (n_l, n_{l-1}), so a 3 -> 5 -> 2 network maps (4, 3) to (4, 5) and (4, 2).
rng = np.random.default_rng(30)
x = rng.normal(size=(4, 3))
weights = [rng.normal(size=(5, 3)), rng.normal(size=(2, 5))]
hs = deep_forward(x, weights, "relu")
check_array(hs[0], np.maximum(x @ weights[0].T, 0), "h_1 of a 3 -> 5 -> 2 ReLU network",
            hint="h_l = f(h_{l-1} @ W_l.T) with W_l of shape (n_l, n_{l-1})")
check_array(hs[1], np.maximum(hs[0] @ weights[1].T, 0), "h_2 of a 3 -> 5 -> 2 ReLU network")
### BEGIN HIDDEN TESTS
import torch

rng = np.random.default_rng(307)
torch_f = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda t: t}
for trial in range(4):
    widths = [int(w) for w in rng.integers(1, 30, size=int(rng.integers(2, 7)))]
    x = rng.normal(size=(int(rng.integers(1, 20)), widths[0]))
    weights = [rng.normal(size=(b, a)) / math.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
    for activation, f in torch_f.items():
        hs = deep_forward(x, weights, activation)
        h = torch.tensor(x)
        assert len(hs) == len(weights), f"deep_forward with {len(weights)} weights returned {len(hs)} activations"
        for l, w in enumerate(weights):
            h = f(h @ torch.tensor(w).T)
            check_array(hs[l], h.numpy(), f"deep_forward layer {l + 1} of widths {widths}, {activation}",
                        rtol=1e-10, atol=1e-12, dtype=np.float64)
### END HIDDEN TESTS
print("deep_forward: tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_forward_stats", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np
from nnkit.testing import check_array

x = np.array([[1.0, -2.0], [3.0, 0.5]])
weights = [np.eye(2), np.array([[1.0, 1.0]])]
# ReLU: h_1 = [[1, 0], [3, 0.5]] (mean 1.125), h_2 = [[1], [3.5]] (mean 2.25, std 1.25).
result = forward_stats(x, weights, "relu")
assert isinstance(result, tuple) and len(result) == 2, "forward_stats should return a tuple (means, stds)"
means, stds = result
h1 = np.array([1.0, 0.0, 3.0, 0.5])
check_array(means, np.array([1.125, 2.25]), "forward_stats means", dtype=np.float64,
            hint="average over all entries of h_l: the batch and the units")
check_array(stds, np.array([h1.std(), 1.25]), "forward_stats stds", dtype=np.float64,
            hint="np.std of all entries of h_l (population std, ddof=0)")
### BEGIN HIDDEN TESTS
import torch

rng = np.random.default_rng(308)
for activation, f in {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda t: t}.items():
    widths = [int(w) for w in rng.integers(2, 40, size=6)]
    x = rng.normal(size=(17, widths[0]))
    weights = [rng.normal(size=(b, a)) * 1.5 / math.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
    means, stds = forward_stats(x, weights, activation)
    h, want_m, want_s = torch.tensor(x), [], []
    for w in weights:
        h = f(h @ torch.tensor(w).T)
        want_m.append(h.mean().item())
        want_s.append(h.std(correction=0).item())
    check_array(means, np.array(want_m), f"forward_stats means, {activation}", rtol=1e-9, atol=1e-12, dtype=np.float64)
    check_array(stds, np.array(want_s), f"forward_stats stds, {activation}", rtol=1e-9, atol=1e-12, dtype=np.float64)
### END HIDDEN TESTS
print("forward_stats: tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_backward_stats", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np
from nnkit.testing import check_array

# One linear layer: dLoss/dx = dout @ W.
rng = np.random.default_rng(40)
x, w, dout = rng.normal(size=(6, 3)), rng.normal(size=(4, 3)), rng.normal(size=(6, 4))
g = backward_stats(x, [w], "linear", dout)
check_array(g, np.array([(dout @ w).std()]), "backward_stats of one linear layer", dtype=np.float64,
            hint="the gradient with respect to a layer's input is (gradient w.r.t. its pre-activation) @ W")

# Two ReLU layers, by hand: x = [1, -2], W_1 = identity, W_2 = [[1, 1]], dout = [[3]].
# z_2 = 1 > 0, so dL/dh_1 = 3 * [1, 1] = [3, 3]; z_1 = [1, -2], so dL/dx = [3, 0].
g = backward_stats(np.array([[1.0, -2.0]]), [np.eye(2), np.array([[1.0, 1.0]])], "relu", np.array([[3.0]]))
check_array(g, np.array([np.std([3.0, 0.0]), np.std([3.0, 3.0])]), "backward_stats of the 2-layer ReLU example",
            dtype=np.float64, hint="g[0] is for the gradient w.r.t. x, g[L-1] for the input of the last layer")

# Two tanh layers against the chain rule written out.
x, w1, w2, dout = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), rng.normal(size=(2, 4)), rng.normal(size=(5, 2))
h1 = np.tanh(x @ w1.T)
h2 = np.tanh(h1 @ w2.T)
d_h1 = (dout * (1 - h2 ** 2)) @ w2
d_x = (d_h1 * (1 - h1 ** 2)) @ w1
check_array(backward_stats(x, [w1, w2], "tanh", dout), np.array([d_x.std(), d_h1.std()]),
            "backward_stats of a 3 -> 4 -> 2 tanh network", dtype=np.float64)
### BEGIN HIDDEN TESTS
import torch

rng = np.random.default_rng(309)
for activation, f in {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda t: t}.items():
    for trial in range(2):
        widths = [int(w) for w in rng.integers(2, 30, size=int(rng.integers(2, 7)))]
        x = rng.normal(size=(int(rng.integers(2, 15)), widths[0]))
        weights = [rng.normal(size=(b, a)) * 1.3 / math.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
        dout = rng.normal(size=(x.shape[0], widths[-1]))
        hs = [torch.tensor(x, requires_grad=True)]
        for w in weights:
            out = f(hs[-1] @ torch.tensor(w).T)
            out.retain_grad()
            hs.append(out)
        (hs[-1] * torch.tensor(dout)).sum().backward()
        want = np.array([h.grad.std(correction=0).item() for h in hs[:-1]])
        check_array(backward_stats(x, weights, activation, dout), want,
                    f"backward_stats against autograd, {activation}, widths {widths}", rtol=1e-9, atol=1e-13,
                    dtype=np.float64)
### END HIDDEN TESTS
print("backward_stats: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "depth_exp_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### What happens in 12 layers
#
# The next two test cells run `deep_forward`, `forward_stats` and `backward_stats` on a network of 12 layers
# of 384 units, with a batch of 100 inputs $x \sim \mathcal N(0, 1)$, and check four effects. They draw the
# weights themselves with NumPy, with the standard deviations of the schemes, so that a mistake in
# `init_weights` is counted by its own tests only. Each was measured on 40 random networks
# before being written down here, and the bounds hold with a wide margin:
#
# 1. **He + ReLU keeps the scale.** With `kaiming_normal` and gain $\sqrt 2$, the standard deviation of the
#    last layer's activations is within a factor 2 of the first layer's, and so is the gradient that reaches
#    $x$ compared with the one that enters the last layer. (Measured: 0.77 to 1.36 for the activations,
#    0.86 to 1.17 for the gradients.)
# 2. **Xavier + ReLU shrinks it.** Gain 1 loses a factor $\sqrt 2$ per ReLU layer, $2^{-11/2} \approx 0.02$
#    over 11 layers (measured: 0.014 to 0.033); the test asks for a ratio below 0.1.
# 3. **$\mathcal N(0, 0.01^2)$ collapses.** Each layer multiplies the standard deviation by about
#    $0.01\sqrt{384} \approx 0.2$ (tanh, near-linear for small inputs) or $0.01\sqrt{192} \approx 0.14$ (ReLU):
#    after 10 layers it is below $10^{-6}$ of the input's, and so is the gradient that reaches the input.
# 4. **$\mathcal N(0, 1)$ saturates tanh.** Pre-activations have a standard deviation near
#    $\sqrt{384} \approx 20$, so in every layer most units sit at $\pm 1$: the test asks for more than 75% of
#    $|h|$ above $0.99$, where $\tanh' < 0.02$ (measured: 88.6% to 89.0%). The gradients do not vanish
#    here, though: the weights are so large that the gradient reaching $x$ is between $3 \times 10^5$ and $6 \times 10^5$
#    times the one entering the last layer. Saturation and exploding gradients together make such a network useless.
#
# Each layer gets its own generator, `np.random.default_rng([seed, l])`, so that the layers are independent;
# `deep_weights` below does the same with your `init_weights`, for the plot after the tests.

# %% nbgrader={"grade": false, "grade_id": "depth_helpers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def deep_weights(width, depth, scheme, seed, **kwargs):
    """depth square weights (width, width), layer l drawn with np.random.default_rng([seed, l])."""
    return [init_weights((width, width), scheme, np.random.default_rng([seed, l]), **kwargs) for l in range(depth)]


def probe_batch(width, seed, n=100):
    """A batch x ~ N(0, 1) of n examples and an upstream gradient of the same shape."""
    rng = np.random.default_rng([seed, 10**6])
    return rng.normal(size=(n, width)), rng.normal(size=(n, width))


def layer_weights(width, depth, std, seed, uniform=False):
    """depth square weights (width, width) with the given std, drawn here with NumPy (not with
    init_weights, which has its own tests): layer l from np.random.default_rng([seed, l])."""
    rngs = [np.random.default_rng([seed, l]) for l in range(depth)]
    if uniform:
        return [r.uniform(-math.sqrt(3) * std, math.sqrt(3) * std, size=(width, width)) for r in rngs]
    return [r.normal(0.0, std, size=(width, width)) for r in rngs]


# %% nbgrader={"grade": true, "grade_id": "test_depth_he", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np


WIDTH, DEPTH = 384, 12
x, dout = probe_batch(WIDTH, seed=0)

he = layer_weights(WIDTH, DEPTH, math.sqrt(2 / WIDTH), seed=1)  # He: gain sqrt(2), fan-in WIDTH
means, stds = forward_stats(x, he, "relu")
ratio = stds[-1] / stds[0]
assert 0.5 <= ratio <= 2.0, \
    f"He init + ReLU: std of layer {DEPTH} / std of layer 1 = {ratio:.3g}, expected within [0.5, 2]. Stds: {stds}"
g = backward_stats(x, he, "relu", dout)
assert 0.5 <= g[0] / g[-1] <= 2.0, \
    f"He init + ReLU: gradient std at the input / at the last layer = {g[0] / g[-1]:.3g}, expected within [0.5, 2]"

xavier = layer_weights(WIDTH, DEPTH, math.sqrt(2 / (WIDTH + WIDTH)), seed=2)  # Xavier, gain 1
_, stds = forward_stats(x, xavier, "relu")
assert stds[-1] / stds[0] < 0.1, \
    f"Xavier (gain 1) + ReLU should lose about sqrt(2) per layer; std ratio last/first = {stds[-1] / stds[0]:.3g}"
### BEGIN HIDDEN TESTS
for seed in (11, 12):
    x, dout = probe_batch(WIDTH, seed=seed)
    _, stds = forward_stats(x, layer_weights(WIDTH, DEPTH, math.sqrt(2 / WIDTH), seed=seed), "relu")
    assert 0.5 <= stds[-1] / stds[0] <= 2.0, f"seed {seed}: He + ReLU std ratio {stds[-1] / stds[0]:.3g}"
    _, stds = forward_stats(x, layer_weights(WIDTH, DEPTH, math.sqrt(1 / WIDTH), seed=seed), "linear")
    assert 0.5 <= stds[-1] / stds[0] <= 2.0, f"seed {seed}: LeCun + linear std ratio {stds[-1] / stds[0]:.3g}"
    _, stds = forward_stats(x, layer_weights(WIDTH, DEPTH, math.sqrt(2 / WIDTH), seed=seed, uniform=True), "relu")
    assert 0.5 <= stds[-1] / stds[0] <= 2.0, f"seed {seed}: He (uniform, fan_out) + ReLU std ratio {stds[-1] / stds[0]:.3g}"
### END HIDDEN TESTS
print("He vs Xavier with ReLU: tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_depth_small_large", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np


WIDTH, DEPTH = 384, 12
x, dout = probe_batch(WIDTH, seed=3)

small = layer_weights(WIDTH, DEPTH, 0.01, seed=4)
for activation in ["tanh", "relu"]:
    means, stds = forward_stats(x, small, activation)
    assert stds[9] < 1e-6 * x.std(), \
        f"N(0, 0.01^2) + {activation}: std at layer 10 is {stds[9]:.3g}, expected below 1e-6 * {x.std():.3g}"
    g = backward_stats(x, small, activation, dout)
    assert g[0] < 1e-6 * g[-1], \
        f"N(0, 0.01^2) + {activation}: gradient std at the input {g[0]:.3g} vs {g[-1]:.3g} at the last layer"

large = layer_weights(WIDTH, DEPTH, 1.0, seed=5)
hs = deep_forward(x, large, "tanh")
saturated = np.array([np.mean(np.abs(h) > 0.99) for h in hs])
assert saturated.min() > 0.75, \
    f"N(0, 1) + tanh: fraction of |h| > 0.99 per layer is {saturated}, expected above 0.75 in every layer"
### BEGIN HIDDEN TESTS
for seed in (13, 14):
    x, dout = probe_batch(WIDTH, seed=seed)
    small = layer_weights(WIDTH, DEPTH, 0.01, seed=seed)
    _, stds = forward_stats(x, small, "tanh")
    assert stds[9] < 1e-6 * x.std(), f"seed {seed}: N(0, 0.01^2) + tanh std at layer 10 = {stds[9]:.3g}"
    hs = deep_forward(x, layer_weights(WIDTH, DEPTH, 1.0, seed=seed), "tanh")
    assert min(np.mean(np.abs(h) > 0.99) for h in hs) > 0.75, f"seed {seed}: N(0, 1) + tanh did not saturate"
### END HIDDEN TESTS
print("small and large init: tests passed")

# %% [markdown] nbgrader={"grade": false, "grade_id": "depth_plot_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The cell below plots the standard deviation of the activations and of the gradients layer by layer for
# several initializations (optional, not graded). Read the curves with the variance argument in mind: which ones follow
# a straight line on the logarithmic axis, and what is its slope?

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "depth_plot", "locked": true, "schema_version": 3, "solution": false, "task": false}
WIDTH, DEPTH = 384, 12
x, dout = probe_batch(WIDTH, seed=0)
cases = {  # label: (activation, scheme, keyword arguments)
    "N(0, 0.01²), tanh": ("tanh", "normal", {"std": 0.01}),
    "N(0, 1), tanh": ("tanh", "normal", {"std": 1.0}),
    "Xavier, tanh": ("tanh", "xavier_normal", {}),
    "Xavier gain 5/3, tanh": ("tanh", "xavier_normal", {"gain": calculate_gain("tanh")}),
    "Xavier, ReLU": ("relu", "xavier_normal", {}),
    "He, ReLU": ("relu", "kaiming_normal", {"gain": calculate_gain("relu")}),
}
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
layer_numbers = np.arange(1, DEPTH + 1)
for label, (activation, scheme, kwargs) in cases.items():
    weights = deep_weights(WIDTH, DEPTH, scheme, seed=1, **kwargs)
    _, stds = forward_stats(x, weights, activation)
    grads = backward_stats(x, weights, activation, dout)
    axes[0].semilogy(layer_numbers, stds, marker="o", label=label)
    axes[1].semilogy(np.arange(DEPTH), grads, marker="o", label=label)
    print(f"{label:24s} activation std: layer 1 {stds[0]:9.3g}, layer {DEPTH} {stds[-1]:9.3g} | "
          f"gradient std: input {grads[0]:9.3g}, last layer {grads[-1]:9.3g}")
axes[0].set(title="std of the activations $h_l$", xlabel="layer $l$")
axes[1].set(title=r"std of $\partial L / \partial h_l$", xlabel="$l$ (0 = the input $x$)")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()


# %% [markdown] nbgrader={"grade": false, "grade_id": "torch_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 5. PyTorch: initializing a model
#
# In PyTorch, `model.apply(fn)` calls `fn` on every submodule, nested ones included, and returns the model;
# `torch.nn.init` modifies tensors in place (the trailing underscore). Write `apply_init(model, scheme,
# activation="relu")` that initializes every `nn.Linear`, `nn.Conv1d` and `nn.Conv2d` of `model` and returns
# `model`:
#
# | `scheme` | weight | bias |
# |---|---|---|
# | `"default"` | PyTorch's default: call the layer's `reset_parameters()` | (set by `reset_parameters`) |
# | `"zeros"` | `nn.init.zeros_` | zeros |
# | `"small"` | `nn.init.normal_(w, 0, 0.01)` | zeros |
# | `"large"` | `nn.init.normal_(w, 0, 1)` | zeros |
# | `"xavier"` | `nn.init.xavier_normal_(w)`, gain 1 as in Glorot & Bengio | zeros |
# | `"kaiming"` | `nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity=activation)` | zeros |
#
# PyTorch's default for `nn.Linear` and the convolutions is `kaiming_uniform_(w, a=math.sqrt(5))`, that is
# $\mathcal U(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})$, with standard deviation
# $1/\sqrt{3\,\text{fan\_in}}$: the "standard" heuristic Glorot & Bengio (2010) started from. In a ReLU
# network it shrinks the signal by about $\sqrt{1/6}$ per layer. You will see what that does to a 10-layer MLP.
#
# Raise `ValueError` for an unknown scheme. Modules without weights (activations, containers) are left alone.

# %% nbgrader={"grade": false, "grade_id": "apply_init_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def apply_init(model, scheme, activation="relu"):
    """Initialize every nn.Linear, nn.Conv1d and nn.Conv2d of model by `scheme` (table above),
    using model.apply; activation ("relu" or "tanh") is the nonlinearity "kaiming" uses.
    Returns model."""
    ### BEGIN SOLUTION
    weight_inits = {
        "zeros": nn.init.zeros_,
        "small": lambda w: nn.init.normal_(w, 0.0, 0.01),
        "large": lambda w: nn.init.normal_(w, 0.0, 1.0),
        "xavier": nn.init.xavier_normal_,
        "kaiming": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity=activation),
    }
    if scheme != "default" and scheme not in weight_inits:
        raise ValueError(f"unknown scheme {scheme!r}")

    def init(module):
        if not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            return
        if scheme == "default":
            module.reset_parameters()
            return
        with torch.no_grad():
            weight_inits[scheme](module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    return model.apply(init)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_apply_init", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np
import torch
import torch.nn as nn


def test_model():
    """Conv1d, then nested Linear layers, so apply_init has to reach into submodules."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(16, 64, kernel_size=5), nn.ReLU(), nn.Flatten(),
                         nn.Sequential(nn.Linear(64 * 36, 256), nn.ReLU()), nn.Linear(256, 10))


def layers_of(model):
    """(name, weight, bias, shape) of the three layers, read from the model apply_init returned."""
    found = []
    for name, module in [("conv", model[0]), ("hidden linear", model[3][0]), ("output linear", model[4])]:
        w, b = module.weight.detach().cpu().double().numpy(), module.bias.detach().cpu().double().numpy()
        found.append((name, w, b, w.shape))
    return found


def fans(shape):
    receptive_field = int(np.prod(shape[2:]))
    return shape[1] * receptive_field, shape[0] * receptive_field


def check_std(w, want, what):
    got = w.std()
    tol = 10 / math.sqrt(2 * w.size)
    assert abs(got / want - 1) < tol, \
        f"{what}: weight std {got:.5g}, expected {want:.5g} (tolerance {100 * tol:.1f}% for {w.size} values)"


for scheme, activation in [("small", "relu"), ("large", "tanh"), ("xavier", "relu"), ("kaiming", "relu"),
                           ("kaiming", "tanh")]:
    model = apply_init(test_model(), scheme, activation)
    assert model is not None, "apply_init should return the model (model.apply returns it)"
    for name, w, b, shape in layers_of(model):
        fan_in, fan_out = fans(shape)
        want = {"small": 0.01, "large": 1.0, "xavier": math.sqrt(2 / (fan_in + fan_out)),
                "kaiming": torch.nn.init.calculate_gain(activation) / math.sqrt(fan_in)}[scheme]
        check_std(w, want, f"apply_init(model, {scheme!r}, {activation!r}), {name} {shape}")
        assert np.all(b == 0), f"apply_init(model, {scheme!r}): the {name} bias should be zero"

model = apply_init(test_model(), "zeros")
for name, w, b, shape in layers_of(model):
    assert np.all(w == 0) and np.all(b == 0), f"apply_init(model, 'zeros'): the {name} layer is not all zeros"
### BEGIN HIDDEN TESTS
model = apply_init(apply_init(test_model(), "zeros"), "default")
for name, w, b, shape in layers_of(model):
    fan_in, _ = fans(shape)
    bound = 1 / math.sqrt(fan_in)
    assert np.abs(w).max() <= bound * (1 + 1e-6), f"'default': {name} weights exceed 1/sqrt(fan_in)"
    if w.size > 2000:
        check_std(w, bound / math.sqrt(3), f"apply_init(model, 'default'), {name}")
    assert np.any(b != 0) and np.abs(b).max() <= bound * (1 + 1e-6), \
        f"'default': the {name} bias should be reset by reset_parameters, U(-1/sqrt(fan_in), 1/sqrt(fan_in))"
torch.manual_seed(1)
conv2d = nn.Sequential(nn.Conv2d(32, 48, kernel_size=3), nn.Tanh(), nn.Conv2d(48, 64, kernel_size=3))
model = apply_init(conv2d, "kaiming", "tanh")
for index, (cin, cout) in [(0, (32, 48)), (2, (48, 64))]:
    w = model[index].weight.detach().cpu().double().numpy()
    check_std(w, (5 / 3) / math.sqrt(cin * 9), f"apply_init on Conv2d({cin}, {cout}, 3), 'kaiming', tanh")
    assert np.all(model[index].bias.detach().cpu().numpy() == 0), "Conv2d bias should be zero"
from nnkit.testing import check_raises
check_raises(lambda: apply_init(test_model(), "orthogonal"), ValueError, "apply_init(model, 'orthogonal')")
### END HIDDEN TESTS
print("apply_init: tests passed")

# %% [markdown] nbgrader={"grade": false, "grade_id": "train_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 6. Training a deep MLP on MNIST-1D, on the GPU if there is one
#
# MNIST-1D (Greydanus, 2020) has 4000 training and 1000 test signals of 40 samples, ten classes, generated
# on your machine by `nnkit.data.load_mnist1d()`; its features are already close to zero mean and unit
# variance. The cell below gives you `make_deep_mlp(activation, depth, width, seed)`: a 40 → 64 → … → 64 → 10
# MLP with `depth` hidden layers.
#
# Write `train_deep_mlp(scheme, activation, depth, device, epochs, seed, width=64, lr=0.01, batch_size=100)`:
#
# 1. Load the data, build `make_deep_mlp(activation, depth, width, seed)` and initialize it with
#    `apply_init(model, scheme, activation)`.
# 2. Move the model and the data to `device` (a `torch.device` or a string; keep all the data there and
#    slice minibatches on the device, so the code runs unchanged on a CPU, a CUDA GPU or Apple's MPS).
# 3. Train for `epochs` epochs with `torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)` (PyTorch's
#    momentum, explained in chapter 1: $v \leftarrow 0.9\,v + g$, $w \leftarrow w - \text{lr}\cdot v$) and the
#    cross-entropy loss, on minibatches of `batch_size` in an order reshuffled every epoch by a
#    `torch.Generator` seeded with `seed`.
# 4. Return a dict with `"loss_history"` (a list of `epochs` Python floats, the mean training loss of each
#    epoch), `"test_accuracy"` (a Python float, measured in `model.eval()` mode under `torch.no_grad()`) and
#    `"model"` (the trained model).
#
# The hidden tests run this procedure themselves on the CPU, step by step, and compare the loss histories.
#
# A network that outputs the same distribution for every input can do no better than the entropy of the
# labels, $\ln 10 \approx 2.303$ for ten balanced classes: a loss stuck there means the network has not
# learnt anything about its input.

# %% nbgrader={"grade": false, "grade_id": "model_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def make_deep_mlp(activation, depth, width=64, seed=0, n_in=40, n_out=10):
    """n_in -> width (depth hidden layers, each followed by the activation) -> n_out,
    with PyTorch's default initialization drawn from the given seed."""
    torch.manual_seed(seed)
    layers, fan_in = [], n_in
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), ACTIVATIONS[activation]()]
        fan_in = width
    layers.append(nn.Linear(fan_in, n_out))
    return nn.Sequential(*layers)


print(make_deep_mlp("relu", depth=3))


# %% nbgrader={"grade": false, "grade_id": "train_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_deep_mlp(scheme, activation, depth, device, epochs, seed, width=64, lr=0.01, batch_size=100):
    """Train make_deep_mlp(activation, depth, width, seed), initialized by apply_init(model, scheme, activation),
    on MNIST-1D with SGD (momentum 0.9) on `device`.

    Returns {"loss_history": [float] * epochs, "test_accuracy": float, "model": the trained nn.Module}.
    """
    ### BEGIN SOLUTION
    from nnkit.data import load_mnist1d

    device = torch.device(device)
    x_train, y_train, x_test, y_test = load_mnist1d()
    x_train, y_train = torch.from_numpy(x_train).to(device), torch.from_numpy(y_train).to(device)
    x_test, y_test = torch.from_numpy(x_test).to(device), torch.from_numpy(y_test).to(device)

    model = apply_init(make_deep_mlp(activation, depth, width, seed), scheme, activation).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same order on every device
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
        loss_history.append(total.item() / n)  # one device-to-host copy per epoch

    model.eval()
    with torch.no_grad():
        test_accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    return {"loss_history": loss_history, "test_accuracy": test_accuracy, "model": model}
    ### END SOLUTION


# %% [markdown] nbgrader={"grade": false, "grade_id": "train_claims_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The two test cells below train 10-layer MLPs (width 64, `lr=0.01`) for a few epochs. Measured over seeds
# 0–9 on a CPU before these tests were written:
#
# * He (`"kaiming"`) with ReLU: the mean loss falls from 2.23–2.33 in the first epoch to 1.41–1.52 in the
#   fifth, test accuracy 0.35–0.42;
# * $\mathcal N(0, 0.01^2)$ (`"small"`), ReLU or tanh, 3 epochs: every epoch's loss is within 0.001 of
#   $\ln 10$, and the network predicts the same class for every input (test accuracy 0.089–0.098, the share
#   of one digit in the test set);
# * all zeros, tanh, 3 layers, 2 epochs: the same, and the hidden weights never move from zero.
#
# The tests ask for less than that: a fall of at least 0.5 in 5 epochs, and a loss within 0.01 of $\ln 10$.

# %% nbgrader={"grade": false, "grade_id": "check_apply_init_first", "locked": true, "schema_version": 3, "solution": false, "task": false}
import torch
import torch.nn as nn


def check_apply_init_first(scheme, activation, want_std):
    """train_deep_mlp initializes through apply_init: say so if apply_init is the part that is wrong."""
    torch.manual_seed(0)
    probe = apply_init(nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512)), scheme, activation)
    w, b = probe[2].weight.detach().cpu().double(), probe[2].bias.detach().cpu()
    if abs(w.std().item() / want_std - 1) > 0.05 or b.abs().max().item() != 0:
        raise AssertionError(
            f"train_deep_mlp initializes the model with your apply_init(model, {scheme!r}, {activation!r}), and "
            f"that gives a 512 -> 512 layer weights of std {w.std().item():.4g} (expected {want_std:.4g}) and biases up "
            f"to {b.abs().max().item():.3g} (expected 0). Fix apply_init first: its own test shows what is wrong.")


# %% nbgrader={"grade": true, "grade_id": "test_train_kaiming", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import nnkit

import torch
import torch.nn as nn
import torch.nn.functional as F


check_apply_init_first("kaiming", "relu", math.sqrt(2 / 512))
device = nnkit.pick_device()
result = train_deep_mlp("kaiming", "relu", depth=10, device=device, epochs=5, seed=0)
assert isinstance(result, dict), f"train_deep_mlp should return a dict, got {type(result).__name__}"
missing = {"loss_history", "test_accuracy", "model"} - set(result)
assert not missing, f"the dict returned by train_deep_mlp lacks the keys {sorted(missing)}"
losses = result["loss_history"]
assert isinstance(losses, list) and len(losses) == 5, \
    f"loss_history should be a list with one value per epoch (5), got {type(losses).__name__} of length {len(losses)}"
assert all(isinstance(v, float) and math.isfinite(v) for v in losses), \
    f"loss_history should hold finite Python floats (use .item()), got {losses}"
assert 1.8 < losses[0] < 2.6, \
    f"the first epoch's mean loss is {losses[0]:.3f}; it should start near ln 10 = 2.303 and fall a little"
assert losses[-1] < losses[0] - 0.5, \
    f"with He initialization the 10-layer ReLU MLP should learn: loss history {[round(v, 3) for v in losses]}"
acc = result["test_accuracy"]
assert isinstance(acc, float) and 0.25 < acc <= 1.0, \
    f"test_accuracy should be a float well above chance (0.1) after 5 epochs, got {acc!r}"
### BEGIN HIDDEN TESTS
for seed in (1, 2):
    h = train_deep_mlp("kaiming", "relu", depth=10, device=device, epochs=5, seed=seed)["loss_history"]
    assert h[-1] < h[0] - 0.5, f"seed {seed}: He + ReLU did not learn: {h}"
h = train_deep_mlp("xavier", "tanh", depth=10, device=device, epochs=5, seed=3)["loss_history"]
assert h[-1] < h[0] - 0.3, f"Xavier + tanh did not learn: {h}"
again = train_deep_mlp("kaiming", "relu", depth=10, device=device, epochs=5, seed=0)["loss_history"]
assert all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(again, losses)), \
    f"two runs with the same seed should give the same losses: {losses} vs {again}"


def oracle_loss_history(depth, epochs, seed, lr=0.01, batch_size=100, width=64):
    """The procedure of the task on the CPU, with torch.nn.init's He initialization."""
    from nnkit.data import load_mnist1d

    x, y, _, _ = load_mnist1d()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(seed)  # as make_deep_mlp does, then the initialization continues the same stream
    layers, fan_in = [], 40
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    net = nn.Sequential(*layers, nn.Linear(fan_in, 10))
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    sgd = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    shuffler = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(epochs):
        order, total = torch.randperm(len(x), generator=shuffler), 0.0
        for first in range(0, len(x), batch_size):
            rows = order[first:first + batch_size]
            loss = F.cross_entropy(net(x[rows]), y[rows])
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            total += loss.item() * len(rows)
        history.append(total / len(x))
    return history


for seed, depth, batch_size in [(5, 4, 100), (6, 3, 128)]:
    got = train_deep_mlp("kaiming", "relu", depth=depth, device="cpu", epochs=2, seed=seed,
                         batch_size=batch_size)["loss_history"]
    want = oracle_loss_history(depth, epochs=2, seed=seed, batch_size=batch_size)
    assert len(got) == 2 and all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(got, want)), \
        (f"seed {seed}, depth {depth}, batch_size {batch_size}, 2 epochs on the CPU: loss history {got}, expected "
         f"{want}. Check the steps of the task: SGD with momentum 0.9, one torch.Generator seeded once, a new "
         "randperm from it every epoch, and the mean loss weighted by the minibatch sizes.")
### END HIDDEN TESTS
print("train_deep_mlp with He initialization: tests passed")

# %% nbgrader={"grade": true, "grade_id": "test_train_bad_init", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np
import nnkit

import torch
import torch.nn as nn


check_apply_init_first("small", "relu", 0.01)
device = nnkit.pick_device()
LN10 = math.log(10)
for activation in ["relu", "tanh"]:
    result = train_deep_mlp("small", activation, depth=10, device=device, epochs=3, seed=0)
    losses = result["loss_history"]
    assert len(losses) == 3 and all(abs(v - LN10) < 0.01 for v in losses), \
        f"N(0, 0.01^2) + {activation}, 10 layers: the loss should stay at ln 10 = {LN10:.3f}, got {losses}"

# All zeros: the hidden units stay identical, and here even stay at zero.
result = train_deep_mlp("zeros", "tanh", depth=3, device=device, epochs=2, seed=0)
losses = result["loss_history"]
assert all(abs(v - LN10) < 0.01 for v in losses), f"zero init: the loss should stay at ln 10, got {losses}"
model = result["model"]
for index in (0, 2):
    w = model[index].weight.detach().cpu().numpy()
    spread = float(np.abs(w - w[0]).max())
    assert spread == 0.0, \
        f"zero init: the rows (units) of hidden layer {index // 2 + 1} should stay identical, differ by {spread:.3g}"
### BEGIN HIDDEN TESTS
for seed in (1, 2):
    h = train_deep_mlp("small", "relu", depth=10, device=device, epochs=3, seed=seed)["loss_history"]
    assert all(abs(v - LN10) < 0.01 for v in h), f"seed {seed}: N(0, 0.01^2) + ReLU should stall at ln 10: {h}"
w = result["model"][2].weight.detach().cpu().numpy()
assert np.all(w == 0), "zero init with tanh: hidden weights receive zero gradient and must stay exactly 0"
### END HIDDEN TESTS
print("train_deep_mlp with bad initializations: tests passed")

# %% [markdown] nbgrader={"grade": false, "grade_id": "symmetry_demo_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Constant, but not zero
#
# With all weights equal to a constant $c \ne 0$ the gradients are no longer zero, but they are the same for
# every unit of a layer, so the units move together and stay copies of each other. The cell below (ungraded)
# shows it on a small tanh network with PyTorch's `nn.init.constant_`: the weights change, the rows do not
# come apart. It is optional.

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "symmetry_demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
net = make_deep_mlp("tanh", depth=2, width=16)
for module in net:
    if isinstance(module, nn.Linear):
        nn.init.constant_(module.weight, 0.1)
        nn.init.zeros_(module.bias)
before = net[0].weight.detach().clone()
optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
from nnkit.data import load_mnist1d
x_np, y_np, _, _ = load_mnist1d()
xb, yb = torch.from_numpy(x_np[:500]), torch.from_numpy(y_np[:500])
for step in range(50):
    loss = F.cross_entropy(net(xb), yb)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
after = net[0].weight.detach()
print(f"first layer: largest change {float((after - before).abs().max()):.3f}, "
      f"largest difference between two units {float((after - after[0]).abs().max()):.2e}")

# %% [markdown] nbgrader={"grade": false, "grade_id": "compare_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 7. Comparing initializations
#
# The cell below (optional, not graded) trains the 10-layer MLP with several initializations, with the same seed and
# learning rate, and plots the loss curves. Questions to answer for yourself:
#
# * PyTorch's default initialization and $\mathcal N(0, 0.01^2)$ both stall with ReLU here. Using the variance argument,
#   by how much does each shrink the signal per ReLU layer?
# * Xavier (gain 1) with ReLU also shrinks the signal by $\sqrt 2$ per layer, yet this 10-layer network still
#   learns, after a slow start. What would you expect at depth 20 or 30? (He et al. report a 30-layer ReLU
#   network that Xavier initialization could not train and theirs could.) Try it with `depth=20`.
# * Why does $\mathcal N(0, 1)$ with tanh start at a loss far above $\ln 10$?
#
# These are single runs with one seed on one small data set; read trends, not the third digit.

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "compare_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
import time

device = nnkit.pick_device()
print(f"training on {device}\n")
start = time.perf_counter()
runs = {}
for activation, schemes in {"relu": ["default", "small", "xavier", "kaiming"],
                            "tanh": ["default", "large", "xavier", "kaiming"]}.items():
    for scheme in schemes:
        runs[scheme, activation] = train_deep_mlp(scheme, activation, depth=10, device=device, epochs=6, seed=0)

print(f"{'init':<10} {'activation':<10} {'loss ep 1':>9} {'loss ep 6':>9} {'test acc':>8}")
for (scheme, activation), r in runs.items():
    print(f"{scheme:<10} {activation:<10} {r['loss_history'][0]:>9.3f} {r['loss_history'][-1]:>9.3f} "
          f"{r['test_accuracy']:>8.3f}")
print(f"\n{time.perf_counter() - start:.1f} s")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for (scheme, activation), r in runs.items():
    ax = axes[0] if activation == "relu" else axes[1]
    ax.plot(range(1, len(r["loss_history"]) + 1), r["loss_history"], marker="o", label=scheme)
for ax, title in zip(axes, ["ReLU, 10 hidden layers", "tanh, 10 hidden layers"]):
    ax.axhline(math.log(10), color="gray", linestyle=":", label="ln 10")
    ax.set(title=title, xlabel="epoch", ylim=(0.8, 4.0))
    ax.legend(fontsize=8)
axes[0].set_ylabel("mean training loss")
fig.tight_layout()
plt.show()

# %% [markdown] nbgrader={"grade": false, "grade_id": "refs", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## References
#
# * Y. LeCun, L. Bottou, G. B. Orr, K.-R. Müller. *Efficient BackProp.* In *Neural Networks: Tricks of the
#   Trade*, Springer, 1998.
# * X. Glorot, Y. Bengio. *Understanding the difficulty of training deep feedforward neural networks.*
#   AISTATS 2010.
# * K. He, X. Zhang, S. Ren, J. Sun. *Delving deep into rectifiers: surpassing human-level performance on
#   ImageNet classification.* ICCV 2015.
# * PyTorch documentation, `torch.nn.init`.
# * S. Greydanus. *Scaling down deep learning* (MNIST-1D), 2020.
