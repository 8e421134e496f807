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
# # Exercise 5: Optimizers, learning-rate schedules and gradient clipping
#
# An optimizer turns a gradient into a parameter update. In this exercise you write the update rules that
# `torch.optim` provides, in NumPy, so that each of them takes exactly the steps PyTorch's class takes; then the
# learning-rate schedules of `torch.optim.lr_scheduler` and the gradient clipping of
# `torch.nn.utils.clip_grad_norm_`; you watch the rules on an ill-conditioned quadratic; and you train a small
# network with PyTorch's optimizers and a schedule.
#
# 1. **Update rules**: SGD, momentum (Polyak, 1964), Nesterov momentum (Nesterov, 1983; Sutskever et al., 2013),
#    AdaGrad (Duchi et al., 2011), RMSprop (Hinton, lecture 6e), AdaDelta (Zeiler, 2012), Adam (Kingma & Ba,
#    2014) and AdamW (Loshchilov & Hutter, 2019).
# 2. **Schedules**: step decay, exponential decay, cosine annealing, linear warmup followed by cosine.
# 3. **Gradient clipping** by the global norm (Pascanu et al., 2013).
# 4. **An ill-conditioned quadratic**: step sizes for SGD and momentum, and how many steps each rule needs.
# 5. **PyTorch**: `train` on MNIST-1D with a chosen optimizer and schedule, on the GPU if there is one.
#
# Conventions: NumPy arrays in `float64`. Every update rule is a function
# `<name>_update(w, dw, state, config) -> (new_w, new_state)`. `state` is a dict that the rule itself fills:
# on the first step it is empty, `{}`, and the rule creates its entries; each call returns a **new** state dict.
# `config` is a dict of hyperparameters, with the names `torch.optim` uses (`lr`, `momentum`, `betas`, ...); a
# key that is missing takes the default written in the docstring. A rule never changes `w`, `dw`, `state` or
# `config` in place (the tests check that).
#
# Each graded cell shows some of its tests; more tests, which run each rule for many steps against the matching
# `torch.optim` class on random gradients, run when your notebook is graded.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import copy
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import nnkit
from nnkit.testing import check_array, check_close, check_scalar

np.set_printoptions(precision=6, suppress=True)
# The networks here are small: on a CPU one thread is faster than two that wait for each other.
torch.set_num_threads(1)
print("torch", torch.__version__, "| device for training:", nnkit.pick_device())

# %% [markdown] nbgrader={"grade": false, "grade_id": "drivers_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The two helpers below run an update rule for many steps: `rule_trajectory` runs one of your rules from an
# empty state on a given sequence of gradients (and notes any argument the rule changed in place);
# `torch_trajectory` runs a `torch.optim` class on the same gradients. The tests compare the two after every
# step; you can do the same while you work. `lrs`, if given, sets the learning rate of each step.

# %% nbgrader={"grade": false, "grade_id": "drivers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def _same(a, b):
    """Deep equality of dicts, lists, tuples, arrays and numbers (arrays bit for bit)."""
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.shape(a) == np.shape(b) and np.array_equal(a, b, equal_nan=True)
    return a == b


def rule_trajectory(update, config, w0, grads, lrs=None):
    """Run update(w, dw, state, config) from state {} on the gradients grads[0], grads[1], ...
    Returns (list of w after each step, list of messages about arguments changed in place)."""
    w, state, path, changed = np.array(w0, dtype=np.float64), {}, [], []
    for k, g in enumerate(grads):
        cfg = dict(config) if lrs is None else {**config, "lr": float(lrs[k])}
        g = np.array(g, dtype=np.float64)
        kept = (w.copy(), g.copy(), copy.deepcopy(state), copy.deepcopy(cfg))
        new_w, new_state = update(w, g, state, cfg)
        for name, now, before in zip(("w", "dw", "state", "config"), (w, g, state, cfg), kept):
            if not _same(now, before):
                changed.append(f"step {k + 1}: the rule changed its argument {name} in place")
        path.append(new_w)
        w, state = new_w, new_state
    return path, changed


def torch_trajectory(optimizer_class, kwargs, w0, grads, lrs=None):
    """The same run with a torch.optim class on a float64 tensor: list of w after each step."""
    p = torch.tensor(np.array(w0, dtype=np.float64), requires_grad=True)
    optimizer = optimizer_class([p], **kwargs)
    path = []
    for k, g in enumerate(grads):
        if lrs is not None:
            optimizer.param_groups[0]["lr"] = float(lrs[k])
        p.grad = torch.tensor(np.array(g, dtype=np.float64))
        optimizer.step()
        path.append(p.detach().numpy().copy())
    return path


# %% [markdown] nbgrader={"grade": false, "grade_id": "sgd_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. Update rules
#
# Below, $g$ is the gradient of one step after **L2 weight decay** has been added to it where the config asks
# for it: $g = \nabla_w L + \lambda w$ with $\lambda$ = `weight_decay` (default 0). That is what
# `weight_decay` means in every `torch.optim` class except AdamW (section 1.8). $\eta$ is `lr`; all operations
# on vectors are elementwise.
#
# ### 1.1 SGD
#
# $$w \leftarrow w - \eta\, g.$$
#
# **Task.** Write `sgd_update` (config: `lr` default `1e-2`, `weight_decay` default `0`). SGD keeps no state:
# return a new empty dict.

# %% nbgrader={"grade": false, "grade_id": "sgd_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sgd_update(w, dw, state, config):
    """Plain SGD. config: lr (1e-2), weight_decay (0). Returns (new_w, new_state)."""
    ### BEGIN SOLUTION
    lr = config.get("lr", 1e-2)
    g = dw + config.get("weight_decay", 0.0) * w
    return w - lr * g, {}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sgd", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_array

w, dw = np.array([1.0, 2.0]), np.array([0.5, -1.0])
new_w, new_state = sgd_update(w, dw, {}, {"lr": 0.1})
check_array(new_w, [0.95, 2.1], "sgd_update: w - lr * dw")
assert new_state == {}, f"sgd_update keeps no state, got {new_state!r:.200}"
new_w, _ = sgd_update(w, dw, {}, {"lr": 0.1, "weight_decay": 0.5})
check_array(new_w, [0.9, 2.0], "sgd_update with weight_decay 0.5", hint="g = dw + weight_decay * w")
new_w, _ = sgd_update(w, dw, {}, {})
check_array(new_w, [0.995, 2.01], "sgd_update with the default lr 1e-2")
print("sgd_update: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(5101)
for config in [{"lr": 0.05}, {"lr": 0.3, "weight_decay": 0.1}, {}]:
    w0 = rng_t.normal(size=(3, 4))
    grads = [rng_t.normal(size=w0.shape) * (1e-4 if k % 2 else 1.0) for k in range(20)]
    got, changed = rule_trajectory(sgd_update, config, w0, grads)
    want = torch_trajectory(torch.optim.SGD, {"lr": 1e-2, **config}, w0, grads)
    assert not changed, f"sgd_update, config {config}: {changed[0]}"
    for k in range(20):
        check_array(got[k], want[k], f"sgd_update against torch.optim.SGD, config {config}, after step {k + 1}",
                    rtol=1e-10, atol=1e-13)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "momentum_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### 1.2 Momentum
#
# Polyak's heavy ball (1964) adds a fraction of the previous step to each new one. PyTorch writes it with a
# *velocity* $v$ that accumulates gradients, and multiplies by the learning rate only when it moves $w$:
#
# $$v \leftarrow \mu v + (1 - \tau)\, g, \qquad w \leftarrow w - \eta\, v,$$
#
# with $\mu$ = `momentum` (default `0.9`) and $\tau$ = `dampening` (default `0`). On the **first** step there
# is no velocity yet and PyTorch sets $v = g$ (no dampening on that step). Other texts write
# $v \leftarrow \mu v - \eta g,\ w \leftarrow w + v$, with the learning rate inside the velocity. With a
# constant $\eta$ the two give the same steps; when $\eta$ changes (a schedule) they do not: yours must follow
# PyTorch, where a new learning rate applies to the whole velocity at once.
#
# **Task.** Write `momentum_update` (config: `lr` 1e-2, `momentum` 0.9, `dampening` 0, `weight_decay` 0;
# state: `{"velocity": array}`).

# %% nbgrader={"grade": false, "grade_id": "momentum_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def momentum_update(w, dw, state, config):
    """SGD with momentum as torch.optim.SGD(momentum=...). config: lr (1e-2), momentum (0.9),
    dampening (0), weight_decay (0). state: {"velocity": array like w}. Returns (new_w, new_state)."""
    ### BEGIN SOLUTION
    lr, mu = config.get("lr", 1e-2), config.get("momentum", 0.9)
    dampening = config.get("dampening", 0.0)
    g = dw + config.get("weight_decay", 0.0) * w
    if "velocity" in state:
        v = mu * state["velocity"] + (1.0 - dampening) * g
    else:
        v = np.array(g, dtype=np.float64)
    return w - lr * v, {"velocity": v}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_momentum", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_array

w, dw = np.array([1.0, 2.0]), np.array([0.5, -1.0])
w1, s1 = momentum_update(w, dw, {}, {"lr": 0.1, "momentum": 0.5})
check_array(w1, [0.95, 2.1], "momentum_update: first step", hint="on the first step the velocity is the gradient")
check_array(s1["velocity"], [0.5, -1.0], "momentum_update: velocity after the first step")
w2, s2 = momentum_update(w1, np.array([1.0, 1.0]), s1, {"lr": 0.2, "momentum": 0.5})
# v = 0.5 * [0.5, -1] + [1, 1] = [1.25, 0.5]; w = w1 - 0.2 * v
check_array(s2["velocity"], [1.25, 0.5], "momentum_update: velocity after the second step", hint="v = mu v + g")
check_array(w2, [0.7, 2.0], "momentum_update: second step with lr 0.2",
            hint="the learning rate of the current step multiplies the whole velocity")
check_array(s1["velocity"], [0.5, -1.0], "momentum_update must not change state in place", rtol=0, atol=0)
print("momentum_update: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(5102)
configs = [{"lr": 0.05, "momentum": 0.9}, {"lr": 0.02, "momentum": 0.5, "dampening": 0.3},
           {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.05}, {}]
for changing_lr in (False, True):
    for config in configs:
        w0 = rng_t.normal(size=(4, 3))
        grads = [rng_t.normal(size=w0.shape) * (1e-4 if k % 3 == 2 else 1.0) for k in range(25)]
        lrs = list(rng_t.uniform(0.01, 0.2, size=25)) if changing_lr else None
        got, changed = rule_trajectory(momentum_update, config, w0, grads, lrs)
        want = torch_trajectory(torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9, **config}, w0, grads, lrs)
        assert not changed, f"momentum_update, config {config}: {changed[0]}"
        for k in range(25):
            check_array(got[k], want[k], f"momentum_update against torch.optim.SGD, config {config}"
                        f"{', a different lr at every step' if changing_lr else ''}, after step {k + 1}",
                        rtol=1e-10, atol=1e-13)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "nesterov_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### 1.3 Nesterov momentum
#
# Nesterov's method evaluates the gradient at the point the momentum is about to carry $w$ to. Sutskever et
# al. (2013) showed that it is momentum with a corrected step; PyTorch (`nesterov=True`) rewrites it so that
# the gradient is still taken at $w$:
#
# $$v \leftarrow \mu v + g \quad(\text{first step: } v = g), \qquad w \leftarrow w - \eta\,(g + \mu v).$$
#
# **Task.** Write `nesterov_update` (config: `lr` 1e-2, `momentum` 0.9, `weight_decay` 0; state
# `{"velocity": array}`; no dampening).

# %% nbgrader={"grade": false, "grade_id": "nesterov_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def nesterov_update(w, dw, state, config):
    """Nesterov momentum as torch.optim.SGD(nesterov=True). config: lr (1e-2), momentum (0.9),
    weight_decay (0). state: {"velocity": array like w}. Returns (new_w, new_state)."""
    ### BEGIN SOLUTION
    lr, mu = config.get("lr", 1e-2), config.get("momentum", 0.9)
    g = dw + config.get("weight_decay", 0.0) * w
    v = mu * state["velocity"] + g if "velocity" in state else np.array(g, dtype=np.float64)
    return w - lr * (g + mu * v), {"velocity": v}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_nesterov", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_array

w1, s1 = nesterov_update(np.array([1.0, 2.0]), np.array([0.5, -1.0]), {}, {"lr": 0.1, "momentum": 0.5})
# v = g; w - 0.1 * (g + 0.5 g)
check_array(w1, [0.925, 2.15], "nesterov_update: first step", hint="step along g + momentum * v")
w2, s2 = nesterov_update(w1, np.array([1.0, 1.0]), s1, {"lr": 0.1, "momentum": 0.5})
# v = [1.25, 0.5]; step = g + 0.5 v = [1.625, 1.25]
check_array(w2, [0.7625, 2.025], "nesterov_update: second step")
print("nesterov_update: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(5103)
for config in [{"lr": 0.05, "momentum": 0.9}, {"lr": 0.1, "momentum": 0.7, "weight_decay": 0.1}, {}]:
    w0 = rng_t.normal(size=(5,))
    grads = [rng_t.normal(size=w0.shape) * (1e-4 if k % 2 else 1.0) for k in range(20)]
    lrs = list(rng_t.uniform(0.01, 0.2, size=20))
    for schedule in (None, lrs):
        got, changed = rule_trajectory(nesterov_update, config, w0, grads, schedule)
        want = torch_trajectory(torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9, **config, "nesterov": True},
                                w0, grads, schedule)
        assert not changed, f"nesterov_update, config {config}: {changed[0]}"
        for k in range(20):
            check_array(got[k], want[k], f"nesterov_update against torch.optim.SGD(nesterov=True), config {config}"
                        f"{', a different lr at every step' if schedule else ''}, after step {k + 1}",
                        rtol=1e-10, atol=1e-13)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "adagrad_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### 1.4 AdaGrad
#
# AdaGrad (Duchi et al., 2011) gives each coordinate its own step size, divided by the root of the sum of all
# its squared gradients so far:
#
# $$s \leftarrow s + g^2, \qquad w \leftarrow w - \eta\, \frac{g}{\sqrt{s} + \varepsilon}.$$
#
# Note where $\varepsilon$ sits: **outside** the square root, as in `torch.optim.Adagrad`.
#
# **Task.** Write `adagrad_update` (config: `lr` 1e-2, `eps` 1e-10, `weight_decay` 0; state `{"sum": array}`,
# starting from zeros).

# %% nbgrader={"grade": false, "grade_id": "adagrad_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def adagrad_update(w, dw, state, config):
    """AdaGrad as torch.optim.Adagrad. config: lr (1e-2), eps (1e-10), weight_decay (0).
    state: {"sum": array like w}. Returns (new_w, new_state)."""
    ### BEGIN SOLUTION
    lr, eps = config.get("lr", 1e-2), config.get("eps", 1e-10)
    g = dw + config.get("weight_decay", 0.0) * w
    s = state.get("sum", np.zeros_like(w, dtype=np.float64)) + g * g
    return w - lr * g / (np.sqrt(s) + eps), {"sum": s}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_adagrad", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_array

w1, s1 = adagrad_update(np.array([1.0, 2.0]), np.array([3.0, -4.0]), {}, {"lr": 0.1, "eps": 0.0})
check_array(w1, [0.9, 2.1], "adagrad_update: first step moves every coordinate by lr", hint="g / sqrt(g^2) = sign(g)")
w2, s2 = adagrad_update(w1, np.array([4.0, 3.0]), s1, {"lr": 0.1, "eps": 0.0})
check_array(s2["sum"], [25.0, 25.0], "adagrad_update: sum of squared gradients after two steps")
check_array(w2, [0.82, 2.04], "adagrad_update: second step")
print("adagrad_update: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(5104)
for config in [{"lr": 0.1}, {"lr": 0.5, "eps": 1e-6, "weight_decay": 0.1}, {}]:
    for scale in (1.0, 1e-4, 1e-9):
        w0 = rng_t.normal(size=(3, 3))
        grads = [rng_t.normal(size=w0.shape) * scale for k in range(20)]
        got, changed = rule_trajectory(adagrad_update, config, w0, grads)
        want = torch_trajectory(torch.optim.Adagrad, {"lr": 1e-2, **config}, w0, grads)
        assert not changed, f"adagrad_update, config {config}: {changed[0]}"
        for k in range(20):
            check_array(got[k], want[k], f"adagrad_update against torch.optim.Adagrad, config {config}, gradients of "
                        f"scale {scale:g}, after step {k + 1}", rtol=1e-10, atol=1e-13)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "rmsprop_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### 1.5 RMSprop
#
# AdaGrad's sum only grows, so its steps only shrink. RMSprop (Hinton, Coursera lecture 6e, 2012) divides by a
# moving average of the squared gradients instead:
#
# $$s \leftarrow \alpha s + (1 - \alpha)\, g^2 \quad(s \text{ starts at } 0), \qquad
# w \leftarrow w - \eta\, \frac{g}{\sqrt{s} + \varepsilon}.$$
#
# As in `torch.optim.RMSprop`: $\alpha$ = `alpha` (default `0.99`), $\varepsilon$ = `eps` (default `1e-8`)
# **outside** the square root. (With gradients of size $10^{-4}$, $\sqrt{s + \varepsilon}$ and
# $\sqrt{s} + \varepsilon$ differ by a factor of about 1.4.)
#
# **Task.** Write `rmsprop_update` (config: `lr` 1e-2, `alpha` 0.99, `eps` 1e-8, `weight_decay` 0; state
# `{"square_avg": array}`).

# %% nbgrader={"grade": false, "grade_id": "rmsprop_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rmsprop_update(w, dw, state, config):
    """RMSprop as torch.optim.RMSprop (no momentum, not centered). config: lr (1e-2), alpha (0.99),
    eps (1e-8), weight_decay (0). state: {"square_avg": array like w}. Returns (new_w, new_state)."""
    ### BEGIN SOLUTION
    lr, alpha, eps = config.get("lr", 1e-2), config.get("alpha", 0.99), config.get("eps", 1e-8)
    g = dw + config.get("weight_decay", 0.0) * w
    s = alpha * state.get("square_avg", np.zeros_like(w, dtype=np.float64)) + (1 - alpha) * g * g
    return w - lr * g / (np.sqrt(s) + eps), {"square_avg": s}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rmsprop", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_array

w1, s1 = rmsprop_update(np.array([1.0, 2.0]), np.array([0.5, -2.0]), {}, {"lr": 0.1, "alpha": 0.75, "eps": 0.0})
# s = 0.25 g^2, sqrt(s) = |g| / 2: each coordinate moves by 2 lr
check_array(s1["square_avg"], [0.0625, 1.0], "rmsprop_update: square_avg after one step")
check_array(w1, [0.8, 2.2], "rmsprop_update: first step")
w2, _ = rmsprop_update(np.array([1.0]), np.array([1e-4]), {}, {"lr": 0.1, "alpha": 0.99})
check_array(w2, [1.0 - 0.1 * 1e-4 / (1e-5 + 1e-8)], "rmsprop_update: a small gradient, default eps",
            rtol=1e-10, atol=0, hint="eps is added after the square root")
print("rmsprop_update: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(5105)
for config in [{"lr": 0.01}, {"lr": 0.001, "alpha": 0.9, "eps": 1e-6}, {"lr": 0.02, "weight_decay": 0.1}, {}]:
    for scale in (1.0, 1e-4):
        w0 = rng_t.normal(size=(2, 5))
        grads = [rng_t.normal(size=w0.shape) * scale for k in range(25)]
        got, changed = rule_trajectory(rmsprop_update, config, w0, grads)
        want = torch_trajectory(torch.optim.RMSprop, {"lr": 1e-2, **config}, w0, grads)
        assert not changed, f"rmsprop_update, config {config}: {changed[0]}"
        for k in range(25):
            check_array(got[k], want[k], f"rmsprop_update against torch.optim.RMSprop, config {config}, gradients of "
                        f"scale {scale:g}, after step {k + 1}", rtol=1e-10, atol=1e-13)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "adadelta_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### 1.6 AdaDelta
#
# Zeiler (2012) keeps RMSprop's average of squared gradients and replaces the learning rate by a second
# average, of the squared *updates*, so that the step has the units of $w$:
#
# $$s \leftarrow \rho s + (1 - \rho)\, g^2, \qquad
# \Delta = \frac{\sqrt{u + \varepsilon}}{\sqrt{s + \varepsilon}}\, g, \qquad
# u \leftarrow \rho u + (1 - \rho)\, \Delta^2, \qquad w \leftarrow w - \eta\, \Delta.$$
#
# Both averages start at 0, $\Delta$ uses $u$ from **before** this step, and here $\varepsilon$ is **inside**
# both square roots (as in the paper and in `torch.optim.Adadelta`). The paper has no learning rate; PyTorch
# multiplies by $\eta$ = `lr`, default `1.0`.
#
# **Task.** Write `adadelta_update` (config: `lr` 1.0, `rho` 0.9, `eps` 1e-6, `weight_decay` 0; state
# `{"square_avg": array, "acc_delta": array}`).

# %% nbgrader={"grade": false, "grade_id": "adadelta_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def adadelta_update(w, dw, state, config):
    """AdaDelta as torch.optim.Adadelta. config: lr (1.0), rho (0.9), eps (1e-6), weight_decay (0).
    state: {"square_avg": array like w, "acc_delta": array like w}. Returns (new_w, new_state)."""
    ### BEGIN SOLUTION
    lr, rho, eps = config.get("lr", 1.0), config.get("rho", 0.9), config.get("eps", 1e-6)
    g = dw + config.get("weight_decay", 0.0) * w
    zeros = np.zeros_like(w, dtype=np.float64)
    s = rho * state.get("square_avg", zeros) + (1 - rho) * g * g
    u = state.get("acc_delta", zeros)
    delta = np.sqrt(u + eps) / np.sqrt(s + eps) * g
    u = rho * u + (1 - rho) * delta * delta
    return w - lr * delta, {"square_avg": s, "acc_delta": u}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_adadelta", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_array

w1, s1 = adadelta_update(np.array([1.0]), np.array([2.0]), {}, {"rho": 0.5, "eps": 1.0})
# s = 2, delta = sqrt(0 + 1) / sqrt(2 + 1) * 2, u = 0.5 delta^2
delta = 2.0 / np.sqrt(3.0)
check_array(w1, [1.0 - delta], "adadelta_update: first step (lr 1.0 by default)")
check_array(s1["square_avg"], [2.0], "adadelta_update: square_avg after one step")
check_array(s1["acc_delta"], [0.5 * delta ** 2], "adadelta_update: acc_delta after one step")
print("adadelta_update: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(5106)
for config in [{}, {"lr": 0.5, "rho": 0.95, "eps": 1e-7}, {"rho": 0.8, "weight_decay": 0.05}]:
    for scale in (1.0, 1e-4):
        w0 = rng_t.normal(size=(4,))
        grads = [rng_t.normal(size=w0.shape) * scale for k in range(25)]
        got, changed = rule_trajectory(adadelta_update, config, w0, grads)
        want = torch_trajectory(torch.optim.Adadelta, {"lr": 1.0, **config}, w0, grads)
        assert not changed, f"adadelta_update, config {config}: {changed[0]}"
        for k in range(25):
            check_array(got[k], want[k], f"adadelta_update against torch.optim.Adadelta, config {config}, gradients "
                        f"of scale {scale:g}, after step {k + 1}", rtol=1e-10, atol=1e-13)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "adam_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### 1.7 Adam
#
# Adam (Kingma & Ba, 2014) keeps moving averages of the gradient and of its square, both starting at 0, and
# corrects the bias that the zero start gives them. With a step counter $t$ that is $1$ on the first step:
#
# $$t \leftarrow t + 1, \quad m \leftarrow \beta_1 m + (1 - \beta_1)\, g, \quad
# v \leftarrow \beta_2 v + (1 - \beta_2)\, g^2, \quad
# \hat m = \frac{m}{1 - \beta_1^t}, \quad \hat v = \frac{v}{1 - \beta_2^t}, \quad
# w \leftarrow w - \eta\, \frac{\hat m}{\sqrt{\hat v} + \varepsilon}.$$
#
# $\hat m$ and $\hat v$ are used for this step only: the state keeps $m$ and $v$. The counter belongs to the
# state (`state["t"]`, an int, absent before the first step), so that two parameters, or two runs, each have
# their own. $\varepsilon$ is outside the square root. Defaults as in `torch.optim.Adam`: `lr` 1e-3,
# `betas` (0.9, 0.999), `eps` 1e-8, `weight_decay` 0 (L2, added to the gradient).
#
# **Task.** Write `adam_update` (state `{"t": int, "m": array, "v": array}`).

# %% nbgrader={"grade": false, "grade_id": "adam_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def adam_update(w, dw, state, config):
    """Adam as torch.optim.Adam. config: lr (1e-3), betas ((0.9, 0.999)), eps (1e-8), weight_decay (0).
    state: {"t": int, "m": array like w, "v": array like w}. Returns (new_w, new_state)."""
    ### BEGIN SOLUTION
    lr, (beta1, beta2) = config.get("lr", 1e-3), config.get("betas", (0.9, 0.999))
    eps = config.get("eps", 1e-8)
    g = dw + config.get("weight_decay", 0.0) * w
    zeros = np.zeros_like(w, dtype=np.float64)
    t = state.get("t", 0) + 1
    m = beta1 * state.get("m", zeros) + (1 - beta1) * g
    v = beta2 * state.get("v", zeros) + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), {"t": t, "m": m, "v": v}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_adam", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_array

w1, s1 = adam_update(np.array([1.0, 2.0]), np.array([0.5, -3.0]), {}, {"lr": 0.1, "eps": 0.0})
# after bias correction m_hat = g and v_hat = g^2 on the first step: every coordinate moves by lr
check_array(w1, [0.9, 2.1], "adam_update: first step", hint="with bias correction the first step is lr * sign(g)")
assert s1.get("t") == 1, f"adam_update: state['t'] should be 1 after the first step, got {s1.get('t')!r}"
check_array(s1["m"], [0.05, -0.3], "adam_update: m after one step (not bias-corrected)")
check_array(s1["v"], [0.00025, 0.009], "adam_update: v after one step (not bias-corrected)")
w2, s2 = adam_update(w1, np.array([0.5, -3.0]), s1, {"lr": 0.1, "eps": 0.0})
check_array(w2, [0.8, 2.2], "adam_update: a second equal gradient moves by lr again")
assert s2.get("t") == 2 and s1.get("t") == 1, "adam_update: the counter should go 1, 2 and state must not change in place"
print("adam_update: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(5107)
configs = [{}, {"lr": 0.01, "betas": (0.8, 0.99)}, {"lr": 0.003, "eps": 1e-6, "weight_decay": 0.1},
           {"lr": 0.05, "betas": (0.5, 0.9)}]
for config in configs:
    for scale in (1.0, 1e-4):
        w0 = rng_t.normal(size=(3, 2))
        grads = [rng_t.normal(size=w0.shape) * scale for k in range(25)]
        want = torch_trajectory(torch.optim.Adam, {"lr": 1e-3, **config, "amsgrad": False}, w0, grads)
        for run in (1, 2):  # two runs from an empty state: the counter lives in the state
            got, changed = rule_trajectory(adam_update, config, w0, grads)
            assert not changed, f"adam_update, config {config}: {changed[0]}"
            for k in range(25):
                check_array(got[k], want[k], f"adam_update against torch.optim.Adam, config {config}, gradients of "
                            f"scale {scale:g}, run {run}, after step {k + 1}", rtol=1e-10, atol=1e-13)
# Resuming from a state at t = 5 (taken from torch's optimizer) gives torch's next steps; the same call twice
# gives the same result.
w0, grads = rng_t.normal(size=(4,)), [rng_t.normal(size=4) * 1e-3 for k in range(8)]
p = torch.tensor(w0, requires_grad=True)
opt = torch.optim.Adam([p], lr=0.01)
for g in grads[:5]:
    p.grad = torch.tensor(g)
    opt.step()
torch_state = opt.state[p]
state = {"t": int(torch_state["step"]), "m": torch_state["exp_avg"].numpy().copy(),
         "v": torch_state["exp_avg_sq"].numpy().copy()}
w = p.detach().numpy().copy()
first = adam_update(w, grads[5], state, {"lr": 0.01})
second = adam_update(w, grads[5], state, {"lr": 0.01})
check_array(first[0], second[0], "adam_update: the same call twice must give the same w (is the counter kept "
            "outside the state?)", rtol=0, atol=0)
for g in grads[5:]:
    p.grad = torch.tensor(g)
    opt.step()
    w, state = adam_update(w, g, state, {"lr": 0.01})
    check_array(w, p.detach().numpy(), f"adam_update resumed from torch's state at t = 5, step {state.get('t')}",
                rtol=1e-10, atol=1e-13)
assert int(state.get("t", -1)) == 8, f"adam_update: after 5 + 3 steps state['t'] should be 8, got {state.get('t')!r}"
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "adamw_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### 1.8 AdamW
#
# With Adam, L2 weight decay added to the gradient is divided by $\sqrt{\hat v}$ like the rest of the gradient,
# so coordinates with large gradients are decayed less. Loshchilov & Hutter (2019) *decouple* the decay from
# the gradient: first shrink the weights, then take the Adam step on the plain gradient $\nabla_w L$:
#
# $$w \leftarrow w - \eta \lambda w, \qquad \text{then Adam's step (section 1.7) with } g = \nabla_w L.$$
#
# Defaults as in `torch.optim.AdamW`: `lr` 1e-3, `betas` (0.9, 0.999), `eps` 1e-8, `weight_decay` **1e-2**.
#
# **Task.** Write `adamw_update` (state `{"t": int, "m": array, "v": array}`, as Adam's).

# %% nbgrader={"grade": false, "grade_id": "adamw_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def adamw_update(w, dw, state, config):
    """AdamW as torch.optim.AdamW. config: lr (1e-3), betas ((0.9, 0.999)), eps (1e-8), weight_decay (1e-2).
    state: {"t": int, "m": array like w, "v": array like w}. Returns (new_w, new_state)."""
    ### BEGIN SOLUTION
    lr, (beta1, beta2) = config.get("lr", 1e-3), config.get("betas", (0.9, 0.999))
    eps, decay = config.get("eps", 1e-8), config.get("weight_decay", 1e-2)
    zeros = np.zeros_like(w, dtype=np.float64)
    t = state.get("t", 0) + 1
    m = beta1 * state.get("m", zeros) + (1 - beta1) * dw
    v = beta2 * state.get("v", zeros) + (1 - beta2) * dw * dw
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    decayed = w * (1 - lr * decay)
    return decayed - lr * m_hat / (np.sqrt(v_hat) + eps), {"t": t, "m": m, "v": v}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_adamw", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_array

w1, s1 = adamw_update(np.array([1.0, 2.0]), np.array([0.5, -3.0]), {}, {"lr": 0.1, "eps": 0.0, "weight_decay": 0.5})
# decay: w (1 - 0.05) = [0.95, 1.9]; Adam's first step: -0.1 * sign(g)
check_array(w1, [0.85, 2.0], "adamw_update: first step", hint="shrink w by lr * weight_decay, then the Adam step")
check_array(s1["m"], [0.05, -0.3], "adamw_update: m uses the plain gradient", hint="the decay does not enter m or v")
print("adamw_update: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(5108)
for config in [{}, {"lr": 0.01, "weight_decay": 0.5}, {"lr": 0.02, "betas": (0.8, 0.95), "eps": 1e-6,
                                                        "weight_decay": 0.1}]:
    for scale in (1.0, 1e-4):
        w0 = rng_t.normal(size=(2, 3)) * 3
        grads = [rng_t.normal(size=w0.shape) * scale for k in range(25)]
        want = torch_trajectory(torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 1e-2, **config, "amsgrad": False},
                                w0, grads)
        got, changed = rule_trajectory(adamw_update, config, w0, grads)
        assert not changed, f"adamw_update, config {config}: {changed[0]}"
        for k in range(25):
            check_array(got[k], want[k], f"adamw_update against torch.optim.AdamW, config {config}, gradients of "
                        f"scale {scale:g}, after step {k + 1}", rtol=1e-10, atol=1e-13)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "schedules_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. Learning-rate schedules
#
# A schedule gives the learning rate as a function of the **step** $k$: the number of times the scheduler has
# been stepped so far (in PyTorch, the number of `scheduler.step()` calls; $k = 0$ before the first).
# `base_lr` is the learning rate at $k = 0$. Each function returns a Python float. With $\eta_0$ = `base_lr`:
#
# * `step_lr(step, base_lr, step_size, gamma)`: multiply by $\gamma$ every `step_size` steps,
#   $\eta_k = \eta_0\, \gamma^{\lfloor k / \text{step\_size} \rfloor}$ (`StepLR`);
# * `exponential_lr(step, base_lr, gamma)`: $\eta_k = \eta_0\, \gamma^k$ (`ExponentialLR`);
# * `cosine_lr(step, base_lr, total_steps, min_lr=0.0)`: for $0 \le k \le T$ = `total_steps`,
#   $\eta_k = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})\,(1 + \cos(\pi k / T))$
#   (`CosineAnnealingLR(T_max=T, eta_min=min_lr)`);
# * `warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, start_factor, min_lr=0.0)`: a linear warmup
#   from $\eta_0 \cdot$ `start_factor` at $k = 0$ to $\eta_0$ at $k = W$ = `warmup_steps`, then the cosine
#   from $\eta_0$ at $k = W$ down to $\eta_{\min}$ at $k = T$ = `total_steps`. In PyTorch:
#   `SequentialLR([LinearLR(start_factor=start_factor, total_iters=W), CosineAnnealingLR(T_max=T - W,
#   eta_min=min_lr)], milestones=[W])`. Use it for $0 \le k \le T$, with $0 < W < T$.

# %% nbgrader={"grade": false, "grade_id": "schedules_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def step_lr(step, base_lr, step_size, gamma):
    """The learning rate after `step` scheduler steps of StepLR(step_size, gamma)."""
    ### BEGIN SOLUTION
    return float(base_lr * gamma ** (step // step_size))
    ### END SOLUTION


def exponential_lr(step, base_lr, gamma):
    """The learning rate after `step` scheduler steps of ExponentialLR(gamma)."""
    ### BEGIN SOLUTION
    return float(base_lr * gamma ** step)
    ### END SOLUTION


def cosine_lr(step, base_lr, total_steps, min_lr=0.0):
    """The learning rate after `step` scheduler steps of CosineAnnealingLR(T_max=total_steps, eta_min=min_lr)."""
    ### BEGIN SOLUTION
    return float(min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * step / total_steps)))
    ### END SOLUTION


def warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, start_factor, min_lr=0.0):
    """Linear warmup for warmup_steps steps, then cosine annealing down to min_lr at total_steps."""
    ### BEGIN SOLUTION
    if step < warmup_steps:
        return float(base_lr * (start_factor + (1 - start_factor) * step / warmup_steps))
    return cosine_lr(step - warmup_steps, base_lr, total_steps - warmup_steps, min_lr)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_step_exponential", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_close

check_close([step_lr(k, 0.1, 3, 0.5) for k in range(7)], [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025],
            "step_lr(k, 0.1, step_size=3, gamma=0.5) for k = 0..6")
check_close([exponential_lr(k, 2.0, 0.5) for k in range(4)], [2.0, 1.0, 0.5, 0.25], "exponential_lr(k, 2.0, 0.5)")
print("step_lr, exponential_lr: visible checks passed")
### BEGIN HIDDEN TESTS
for base_lr, step_size, gamma in [(0.3, 4, 0.7), (1.0, 1, 0.9), (0.05, 7, 0.1)]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma)
    for k in range(40):
        got = step_lr(k, base_lr, step_size, gamma)
        assert isinstance(got, float), f"step_lr should return a Python float, got {type(got).__name__}"
        check_close(got, opt.param_groups[0]["lr"], f"step_lr against StepLR({step_size}, {gamma}), lr {base_lr}, "
                    f"after {k} scheduler steps", rtol=1e-10, atol=1e-14)
        opt.step()
        sched.step()
for base_lr, gamma in [(0.3, 0.95), (1.0, 0.5)]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    for k in range(40):
        check_close(exponential_lr(k, base_lr, gamma), opt.param_groups[0]["lr"],
                    f"exponential_lr against ExponentialLR({gamma}), lr {base_lr}, after {k} scheduler steps",
                    rtol=1e-10, atol=1e-14)
        opt.step()
        sched.step()
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_cosine", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_close

check_close([cosine_lr(k, 1.0, 4) for k in range(5)], [1.0, 0.5 + 0.5 * np.sqrt(0.5), 0.5, 0.5 - 0.5 * np.sqrt(0.5), 0.0],
            "cosine_lr(k, 1.0, total_steps=4) for k = 0..4")
check_close(cosine_lr(2, 1.0, 4, min_lr=0.2), 0.6, "cosine_lr(2, 1.0, 4, min_lr=0.2): half-way between 1.0 and 0.2")
print("cosine_lr: visible checks passed")
### BEGIN HIDDEN TESTS
for base_lr, total, min_lr in [(0.1, 10, 0.0), (0.5, 37, 0.01), (1.0, 1, 0.3)]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=min_lr)
    for k in range(total + 1):
        got = cosine_lr(k, base_lr, total, min_lr)
        assert isinstance(got, float), f"cosine_lr should return a Python float, got {type(got).__name__}"
        check_close(got, opt.param_groups[0]["lr"], f"cosine_lr against CosineAnnealingLR(T_max={total}, "
                    f"eta_min={min_lr}), lr {base_lr}, after {k} scheduler steps", rtol=1e-10, atol=1e-14)
        opt.step()
        sched.step()
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_warmup_cosine", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_close

check_close([warmup_cosine_lr(k, 1.0, 2, 4, start_factor=0.5) for k in range(5)], [0.5, 0.75, 1.0, 0.5, 0.0],
            "warmup_cosine_lr(k, 1.0, warmup_steps=2, total_steps=4, start_factor=0.5) for k = 0..4")
print("warmup_cosine_lr: visible checks passed")
### BEGIN HIDDEN TESTS
import warnings

for base_lr, warmup, total, start_factor, min_lr in [(0.3, 4, 13, 0.1, 0.01), (1.0, 1, 5, 0.5, 0.0),
                                                     (0.05, 10, 50, 0.01, 0.001)]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = torch.optim.lr_scheduler.SequentialLR(
            opt, [torch.optim.lr_scheduler.LinearLR(opt, start_factor=start_factor, total_iters=warmup),
                  torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr)],
            milestones=[warmup])
        for k in range(total + 1):
            got = warmup_cosine_lr(k, base_lr, warmup, total, start_factor, min_lr)
            assert isinstance(got, float), f"warmup_cosine_lr should return a Python float, got {type(got).__name__}"
            check_close(got, opt.param_groups[0]["lr"], f"warmup_cosine_lr against LinearLR + CosineAnnealingLR "
                        f"(base_lr {base_lr}, warmup {warmup}, total {total}, start_factor {start_factor}, "
                        f"min_lr {min_lr}) after {k} scheduler steps", rtol=1e-10, atol=1e-14)
            opt.step()
            sched.step()
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "clip_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. Gradient clipping
#
# A rare huge gradient (Pascanu et al., 2013, met them in recurrent networks) can throw the weights far in one
# step. Clipping by the **global** norm rescales all the gradients of a model together, keeping their
# direction, when their joint norm is above `max_norm`. As `torch.nn.utils.clip_grad_norm_`:
#
# $$\|g\| = \sqrt{\textstyle\sum_i \sum_j g_{i,j}^2} \ \text{(over all arrays)}, \qquad
# c = \min\!\Big(1, \frac{\text{max\_norm}}{\|g\| + 10^{-6}}\Big), \qquad g_i \leftarrow c\, g_i.$$
#
# **Task.** Write `clip_grad_norm(grads, max_norm)` for a list of arrays, returning `(clipped, total_norm)`:
# a new list of new arrays and the norm **before** clipping, a Python float (as PyTorch returns it). Leave the
# list and its arrays unchanged.

# %% nbgrader={"grade": false, "grade_id": "clip_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def clip_grad_norm(grads, max_norm):
    """Clip a list of gradient arrays by their global L2 norm. Returns (list of new arrays, norm before clipping)."""
    ### BEGIN SOLUTION
    total_norm = math.sqrt(sum(float(np.sum(np.square(g))) for g in grads))
    coef = min(1.0, max_norm / (total_norm + 1e-6))
    return [np.asarray(g, dtype=np.float64) * coef for g in grads], total_norm
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_clip", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_array, check_scalar

grads = [np.array([3.0, 0.0]), np.array([[4.0]])]
clipped, norm = clip_grad_norm(grads, 1.0)
check_scalar(norm, 5.0, "clip_grad_norm: the global norm (before clipping)")
check_array(clipped[0], [0.6, 0.0], "clip_grad_norm: first array", rtol=1e-6)
check_array(clipped[1], [[0.8]], "clip_grad_norm: second array", rtol=1e-6)
check_array(grads[0], [3.0, 0.0], "clip_grad_norm must not change its input", rtol=0, atol=0)
clipped, norm = clip_grad_norm(grads, 10.0)
check_array(clipped[0], [3.0, 0.0], "clip_grad_norm: below max_norm nothing changes")
print("clip_grad_norm: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(5109)
for case in range(8):
    shapes = [tuple(rng_t.integers(1, 5, size=rng_t.integers(1, 3))) for _ in range(rng_t.integers(1, 4))]
    grads = [rng_t.normal(size=s) * 10 ** rng_t.uniform(-3, 1) for s in shapes]
    total = np.sqrt(sum((g ** 2).sum() for g in grads))
    max_norm = float(total * [0.3, 0.999, 1.0, 1.0 + 1e-7, 2.0, 1e-3, 0.5, 1.0 - 1e-7][case])
    params = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g)
    want_norm = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
    kept = [g.copy() for g in grads]
    got, norm = clip_grad_norm(grads, max_norm)
    assert isinstance(norm, float), f"clip_grad_norm should return the norm as a Python float, got {type(norm).__name__}"
    check_scalar(norm, want_norm, f"clip_grad_norm: total norm against clip_grad_norm_ (case {case})", rtol=1e-12,
                 hint="return the norm before clipping, as PyTorch does")
    assert isinstance(got, list) and len(got) == len(grads), f"clip_grad_norm should return a list of {len(grads)} arrays"
    for i, p in enumerate(params):
        check_array(got[i], p.grad.numpy(), f"clip_grad_norm: array {i} against clip_grad_norm_ (case {case}, "
                    f"max_norm / norm = {max_norm / total:.7f})", rtol=1e-12, atol=1e-15)
        check_array(grads[i], kept[i], f"clip_grad_norm changed input array {i} in place", rtol=0, atol=0)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "quadratic_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. An ill-conditioned quadratic
#
# The cell below defines $f(w) = \tfrac12 w^\top A w$ in two dimensions, with $A = R\,\mathrm{diag}(1, \kappa)\,R^\top$,
# condition number $\kappa = 50$ and $R$ a rotation by 30°: a long narrow valley whose axes are not the
# coordinate axes. The minimum is $w = 0$. `run_rule(update, config, steps)` runs one of your rules from
# $w_0 = (1, 1)$ on the exact gradient $A w$ and returns the iterates; `steps_to_tol(path, tol)` is the first step
# at which $\|w\| \le \text{tol}\,\|w_0\|$.
#
# On such a quadratic, gradient descent with step $\eta$ multiplies the component along an eigenvector of
# eigenvalue $\lambda$ by $1 - \eta\lambda$ at each step. For eigenvalues between $\mu$ and $L$ (here 1 and
# $\kappa$) it is stable for $\eta < 2/L$, and the slowest component shrinks fastest with the $\eta$ that
# balances the two ends of the spectrum, $|1 - \eta\mu| = |1 - \eta L|$. For momentum (heavy ball), each component
# follows the linear recursion $w_{k+1} = w_k - \eta\lambda w_k + \beta (w_k - w_{k-1})$; Polyak (1964)
# chose $\eta$ and $\beta$ to make the largest root of its characteristic polynomial, over all
# $\lambda \in [\mu, L]$, as small as possible:
#
# $$\eta^* = \frac{4}{(\sqrt L + \sqrt \mu)^2}, \qquad \beta^* = \left(\frac{\sqrt L - \sqrt \mu}{\sqrt L + \sqrt \mu}\right)^2.$$
#
# (PyTorch's momentum, $v \leftarrow \beta v + g,\ w \leftarrow w - \eta v$, takes exactly these steps with a
# constant $\eta$.)
#
# **Task.** Write `quadratic_configs(mu, L)` returning `{"sgd": {"lr": ...}, "momentum": {"lr": ..., "momentum": ...}}`:
# the best constant step size for SGD, and Polyak's $(\eta^*, \beta^*)$ for momentum.

# %% nbgrader={"grade": false, "grade_id": "quadratic_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
KAPPA = 50.0
THETA = math.pi / 6
W0 = (1.0, 1.0)


def quadratic_matrix(kappa=KAPPA, theta=THETA):
    """A = R diag(1, kappa) R^T with R the rotation by theta."""
    c, s = math.cos(theta), math.sin(theta)
    rotation = np.array([[c, -s], [s, c]])
    return rotation @ np.diag([1.0, kappa]) @ rotation.T


def run_rule(update, config, steps, kappa=KAPPA, theta=THETA):
    """Iterates (steps + 1, 2) of update on f(w) = w^T A w / 2 from W0, starting from an empty state."""
    a = quadratic_matrix(kappa, theta)
    w = np.array(W0, dtype=np.float64)
    state, path = {}, [w.copy()]
    for _ in range(steps):
        w, state = update(w, a @ w, state, dict(config))
        path.append(np.array(w, dtype=np.float64))
    return np.array(path)


def steps_to_tol(path, tol):
    """The first step k with ||w_k|| <= tol ||w_0||, or None if the run never gets there."""
    ratio = np.linalg.norm(path, axis=1) / np.linalg.norm(path[0])
    hits = np.nonzero(ratio <= tol)[0]
    return int(hits[0]) if len(hits) else None


# %% nbgrader={"grade": false, "grade_id": "quadratic_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def quadratic_configs(mu, L):
    """Best constant configs on a quadratic with Hessian eigenvalues in [mu, L]:
    {"sgd": {"lr": ...}, "momentum": {"lr": ..., "momentum": ...}}."""
    ### BEGIN SOLUTION
    root_mu, root_l = math.sqrt(mu), math.sqrt(L)
    return {"sgd": {"lr": 2.0 / (mu + L)},
            "momentum": {"lr": 4.0 / (root_l + root_mu) ** 2,
                         "momentum": ((root_l - root_mu) / (root_l + root_mu)) ** 2}}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_quadratic_configs", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.testing import check_scalar

configs = quadratic_configs(1.0, 9.0)
check_scalar(configs["sgd"]["lr"], 0.2, "quadratic_configs(1, 9): SGD lr", hint="|1 - lr mu| = |1 - lr L|")
check_scalar(configs["momentum"]["lr"], 0.25, "quadratic_configs(1, 9): momentum lr")
check_scalar(configs["momentum"]["momentum"], 0.25, "quadratic_configs(1, 9): momentum coefficient")
print("quadratic_configs: visible checks passed")
### BEGIN HIDDEN TESTS
def worst_rate(lr, beta, lambdas):
    """Largest modulus of the roots of z^2 - (1 + beta - lr lam) z + beta over the eigenvalues lam."""
    worst = 0.0
    for lam in lambdas:
        worst = max(worst, max(abs(np.roots([1.0, -(1.0 + beta - lr * lam), beta]))))
    return worst


for mu, L in [(1.0, 50.0), (0.1, 3.0), (2.0, 2000.0)]:
    lambdas = np.linspace(mu, L, 401)
    configs = quadratic_configs(mu, L)
    lr_grid = np.linspace(0.01, 1.99, 2000) / L
    best_sgd = min(max(abs(1 - lr * mu), abs(1 - lr * L)) for lr in lr_grid)
    got_sgd = worst_rate(configs["sgd"]["lr"], 0.0, lambdas)
    assert got_sgd <= best_sgd + 1e-12, \
        f"quadratic_configs({mu}, {L}): SGD lr {configs['sgd']['lr']} contracts by {got_sgd} per step; a grid search finds {best_sgd}"
    got = worst_rate(configs["momentum"]["lr"], configs["momentum"]["momentum"], lambdas)
    rng_t = np.random.default_rng(5110)
    for lr, beta in zip(rng_t.uniform(0.2, 5.0, 300) / L, rng_t.uniform(0.0, 0.999, 300)):
        other = worst_rate(lr, beta, lambdas[::20])
        assert got <= other + 1e-6, (f"quadratic_configs({mu}, {L}): momentum config {configs['momentum']} contracts by "
                                     f"{got} per step, but lr {lr}, momentum {beta} gives {other}")
    optimum = (np.sqrt(L) - np.sqrt(mu)) / (np.sqrt(L) + np.sqrt(mu))
    check_scalar(got, optimum, f"quadratic_configs({mu}, {L}): worst contraction of momentum", rtol=1e-5)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "race_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The next test counts the steps each rule needs to bring $\|w\|$ below $10^{-4}\|w_0\|$ on this quadratic:
# SGD at its best step size $2/(1 + \kappa)$, momentum with Polyak's $(\eta^*, \beta^*)$, and Adam with
# `lr=0.1` (other settings default), using **your** `sgd_update`, `momentum_update` and `adam_update`.
# Measured with the reference solutions before the test was written: SGD 231 steps, momentum 44, Adam 136.
# SGD's rate is $(\kappa-1)/(\kappa+1) \approx 0.961$ per step, momentum's
# $(\sqrt\kappa-1)/(\sqrt\kappa+1) \approx 0.752$. Adam rescales each *coordinate*, and the valley is rotated:
# it does not remove the ill-conditioning. The test asks for the order with margins: momentum in at most half
# of Adam's steps, Adam in at most 80 % of SGD's.

# %% nbgrader={"grade": true, "grade_id": "test_quadratic_race", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import math

mu, L = 1.0, 50.0
root_mu, root_l = math.sqrt(mu), math.sqrt(L)
n_sgd = steps_to_tol(run_rule(sgd_update, {"lr": 2 / (mu + L)}, 400), 1e-4)
n_momentum = steps_to_tol(run_rule(momentum_update, {"lr": 4 / (root_l + root_mu) ** 2,
                                                     "momentum": ((root_l - root_mu) / (root_l + root_mu)) ** 2}, 400), 1e-4)
n_adam = steps_to_tol(run_rule(adam_update, {"lr": 0.1}, 400), 1e-4)
print(f"steps to 1e-4: SGD {n_sgd}, momentum {n_momentum}, Adam {n_adam}")
assert n_sgd is not None and 200 <= n_sgd <= 260, f"SGD at lr 2/(1 + kappa) should need about 231 steps, took {n_sgd}"
assert n_momentum is not None and n_momentum <= 60, f"momentum should need about 44 steps, took {n_momentum}"
assert n_adam is not None and 2 * n_momentum <= n_adam <= 0.8 * n_sgd, \
    f"Adam (lr 0.1) should need about 136 steps, between 2 x momentum's and 0.8 x SGD's; took {n_adam}"
### BEGIN HIDDEN TESTS
n_sgd_axes = steps_to_tol(run_rule(sgd_update, {"lr": 2 / (mu + L)}, 400, theta=0.0), 1e-4)
assert n_sgd_axes is not None and abs(n_sgd_axes - n_sgd) <= 10, \
    f"SGD does not care about the rotation: {n_sgd_axes} steps without it, {n_sgd} with it"
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "trajectories_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The cell below (optional, not graded) draws the first 60 steps of each rule on the contour lines of $f$.

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "trajectories_plot", "locked": true, "schema_version": 3, "solution": false, "task": false}
a = quadratic_matrix()
grid = np.linspace(-1.6, 1.6, 201)
gx, gy = np.meshgrid(grid, grid)
points = np.stack([gx, gy])
values = 0.5 * np.einsum("i...,ij,j...->...", points, a, points)
tuned = quadratic_configs(1.0, KAPPA)
runs = {"SGD, lr 2/(1+κ)": run_rule(sgd_update, tuned["sgd"], 60),
        "momentum (Polyak)": run_rule(momentum_update, tuned["momentum"], 60),
        "Adam, lr 0.1": run_rule(adam_update, {"lr": 0.1}, 60)}
fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharey=True)
for ax, (name, path) in zip(axes, runs.items()):
    ax.contour(gx, gy, values, levels=np.geomspace(1e-3, 60, 14), colors="lightgray", linewidths=0.8)
    ax.plot(path[:, 0], path[:, 1], marker=".", markersize=4, linewidth=1)
    ax.plot(0, 0, marker="*", color="black")
    ax.set(title=name, xlabel="$w_1$", aspect="equal")
axes[0].set_ylabel("$w_2$")
fig.tight_layout()
plt.show()

# %% [markdown] nbgrader={"grade": false, "grade_id": "train_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 5. Optimizers and schedules in PyTorch
#
# `make_model(seed)` (below) builds a small MLP for MNIST-1D. Write
# `train(optimizer_name, lr, epochs, seed, device, schedule=None, batch_size=100)`, following the course's recipe
# (chapter 4's `train`):
#
# * the model is `make_model(seed)`, moved to `device`; the training data go to `device` too;
# * the optimizer, with learning rate `lr` and PyTorch's other defaults: `"sgd"` is `torch.optim.SGD`,
#   `"momentum"` SGD with `momentum=0.9`, `"nesterov"` SGD with `momentum=0.9, nesterov=True`,
#   `"rmsprop"` `torch.optim.RMSprop`, `"adam"` `torch.optim.Adam`, `"adamw"` `torch.optim.AdamW`;
# * the schedule, stepped **once per epoch, after** that epoch's `optimizer.step()` calls: `None` (a constant
#   learning rate), `"cosine"` (`CosineAnnealingLR(T_max=epochs)`) or `"step"` (`StepLR(step_size=2, gamma=0.5)`).
#   Stepping the scheduler before the optimizer skips the first value of the schedule (and PyTorch warns);
# * one `torch.Generator` seeded with `seed` once, a new `torch.randperm` of the training examples from it at
#   the start of each epoch, minibatches of `batch_size` in that order, mean cross-entropy on each, one optimizer
#   step per minibatch;
#
# Return a dict of plain numbers: `"loss_history"`, the example-weighted mean of the minibatch losses of each
# epoch (a list of `epochs` floats); `"lr_history"`, the learning rate used during each epoch (read
# `optimizer.param_groups[0]["lr"]` during the epoch); `"test_accuracy"`, the accuracy on the test set after
# training (a float).

# %% nbgrader={"grade": false, "grade_id": "model_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
def make_model(seed, hidden=64):
    """A small MLP for MNIST-1D (40 inputs, 10 classes), its weights drawn after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(40, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))


# %% nbgrader={"grade": false, "grade_id": "train_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train(optimizer_name, lr, epochs, seed, device, schedule=None, batch_size=100):
    """Train make_model(seed) on MNIST-1D with the named optimizer and schedule.
    Returns {"loss_history": [float] * epochs, "lr_history": [float] * epochs, "test_accuracy": float}."""
    ### BEGIN SOLUTION
    from nnkit.data import load_mnist1d

    device = torch.device(device)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a).to(device) for a in load_mnist1d())
    model = make_model(seed).to(device)
    params = model.parameters()
    optimizer = {
        "sgd": lambda: torch.optim.SGD(params, lr=lr),
        "momentum": lambda: torch.optim.SGD(params, lr=lr, momentum=0.9),
        "nesterov": lambda: torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=lr),
        "adam": lambda: torch.optim.Adam(params, lr=lr),
        "adamw": lambda: torch.optim.AdamW(params, lr=lr),
    }[optimizer_name]()
    scheduler = None
    if schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    elif schedule == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    elif schedule is not None:
        raise ValueError(f"unknown schedule {schedule!r}")
    generator = torch.Generator().manual_seed(seed)
    n = len(x_train)
    loss_history, lr_history = [], []
    for _ in range(epochs):
        model.train()
        lr_history.append(float(optimizer.param_groups[0]["lr"]))
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
        if scheduler is not None:
            scheduler.step()
    model.eval()
    with torch.no_grad():
        test_accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    return {"loss_history": loss_history, "lr_history": lr_history, "test_accuracy": test_accuracy}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_train_recipe", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import nnkit
import torch

result = train("adam", 1e-3, epochs=2, seed=0, device=nnkit.pick_device())
assert isinstance(result, dict) and {"loss_history", "lr_history", "test_accuracy"} <= set(result), \
    f"train should return a dict with 'loss_history', 'lr_history' and 'test_accuracy', got {result!r:.200}"
losses = result["loss_history"]
assert isinstance(losses, list) and len(losses) == 2 and all(isinstance(v, float) and math.isfinite(v) for v in losses), \
    f"loss_history should be a list of 2 finite Python floats (one per epoch), got {losses!r:.200}"
assert losses[1] < losses[0] < 2.5, f"the loss should start below ln 10 and fall: {losses}"
acc = result["test_accuracy"]
assert isinstance(acc, float) and 0.2 < acc <= 1.0, f"test_accuracy should be a float above chance, got {acc!r}"
print(f"train (Adam): loss {losses[0]:.3f} -> {losses[1]:.3f}, test accuracy {acc:.3f}")
### BEGIN HIDDEN TESTS
import torch.nn as nn
import torch.nn.functional as F
from nnkit.data import load_mnist1d

x, y, x_test, y_test = (torch.from_numpy(a) for a in load_mnist1d())
classes = {"sgd": (torch.optim.SGD, {}), "momentum": (torch.optim.SGD, {"momentum": 0.9}),
           "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}), "rmsprop": (torch.optim.RMSprop, {}),
           "adam": (torch.optim.Adam, {}), "adamw": (torch.optim.AdamW, {})}
for name, lr, schedule, seed, batch_size in [("momentum", 0.05, "cosine", 1, 100), ("adamw", 3e-3, "step", 2, 128),
                                             ("nesterov", 0.05, None, 3, 100), ("rmsprop", 1e-3, "cosine", 4, 200),
                                             ("sgd", 0.2, "step", 5, 100)]:
    epochs = 3
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    cls, kwargs = classes[name]
    optimizer = cls(model.parameters(), lr=lr, **kwargs)
    scheduler = {None: None, "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs),
                 "step": lambda: torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)}[schedule]
    scheduler = scheduler() if scheduler else None
    shuffler, want_losses, want_lrs = torch.Generator().manual_seed(seed), [], []
    for _ in range(epochs):
        want_lrs.append(optimizer.param_groups[0]["lr"])
        order, total = torch.randperm(len(x), generator=shuffler), 0.0
        for first in range(0, len(x), batch_size):
            rows = order[first:first + batch_size]
            loss = F.cross_entropy(model(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        want_losses.append(total / len(x))
        if scheduler:
            scheduler.step()
    with torch.no_grad():
        want_acc = (model(x_test).argmax(1) == y_test).double().mean().item()
    got = train(name, lr, epochs, seed, "cpu", schedule=schedule, batch_size=batch_size)
    setting = f"{name}, lr {lr}, schedule {schedule}, seed {seed}, batch_size {batch_size}, {epochs} epochs on the CPU"
    check_close(got["lr_history"], want_lrs, f"train: lr_history against a replay of the recipe ({setting})",
                rtol=1e-9, atol=1e-12)
    check_close(got["loss_history"], want_losses, f"train: loss history against a replay of the recipe ({setting})",
                rtol=1e-5, atol=1e-6, hint="one torch.Generator seeded once, a new randperm each epoch, example-weighted "
                "mean loss, the scheduler stepped once per epoch after the optimizer steps")
    assert abs(got["test_accuracy"] - want_acc) < 1e-6, \
        f"train: test_accuracy {got['test_accuracy']} but the trained model's accuracy is {want_acc} ({setting})"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_train_schedule_order", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
import nnkit
import torch
from nnkit.testing import check_close

result = train("momentum", 0.1, epochs=4, seed=0, device=nnkit.pick_device(), schedule="cosine")
optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
want = []
for epoch in range(4):
    want.append(optimizer.param_groups[0]["lr"])
    optimizer.step()
    scheduler.step()
check_close(result["lr_history"], want, "train: lr_history with schedule 'cosine' over 4 epochs", rtol=1e-9,
            hint="the first epoch runs at lr itself: step the scheduler after the epoch's optimizer steps")
print("lr per epoch:", [round(v, 4) for v in result["lr_history"]])
### BEGIN HIDDEN TESTS
result = train("sgd", 0.4, epochs=5, seed=6, device="cpu", schedule="step")
check_close(result["lr_history"], [0.4, 0.4, 0.2, 0.2, 0.1], "train: lr_history with schedule 'step' over 5 epochs",
            rtol=1e-9)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "compare_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The cell below (optional, not graded) trains the MLP with a few optimizers, each at one learning rate, and
# plots the training loss. Single runs with one seed on a small data set: the learning rates are not tuned,
# and the comparison says little about which optimizer is better in general.

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "compare_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
device = nnkit.pick_device()
fig, ax = plt.subplots(figsize=(6, 3.6))
for name, lr in [("sgd", 0.1), ("momentum", 0.05), ("adam", 3e-3), ("adamw", 3e-3)]:
    for schedule in (None, "cosine"):
        run = train(name, lr, epochs=8, seed=0, device=device, schedule=schedule)
        ax.plot(range(1, 9), run["loss_history"], marker="o", linestyle="-" if schedule is None else "--",
                label=f"{name} lr {lr}{', cosine' if schedule else ''} (test acc {run['test_accuracy']:.2f})")
ax.set(xlabel="epoch", ylabel="mean training loss")
ax.legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown] nbgrader={"grade": false, "grade_id": "refs", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## References
#
# * B. T. Polyak. *Some methods of speeding up the convergence of iteration methods.* USSR Computational
#   Mathematics and Mathematical Physics, 1964.
# * Y. Nesterov. *A method for solving the convex programming problem with convergence rate O(1/k²).* 1983.
# * I. Sutskever, J. Martens, G. Dahl, G. Hinton. *On the importance of initialization and momentum in deep
#   learning.* ICML 2013.
# * J. Duchi, E. Hazan, Y. Singer. *Adaptive subgradient methods for online learning and stochastic
#   optimization.* JMLR 2011.
# * G. Hinton. *Neural networks for machine learning*, lecture 6e (RMSprop), 2012.
# * M. D. Zeiler. *ADADELTA: an adaptive learning rate method.* arXiv:1212.5701, 2012.
# * D. P. Kingma, J. Ba. *Adam: a method for stochastic optimization.* arXiv:1412.6980, 2014 (ICLR 2015).
# * I. Loshchilov, F. Hutter. *Decoupled weight decay regularization.* ICLR 2019.
# * L. N. Smith. *Cyclical learning rates for training neural networks.* WACV 2017.
# * R. Pascanu, T. Mikolov, Y. Bengio. *On the difficulty of training recurrent neural networks.* ICML 2013.
# * PyTorch documentation: `torch.optim`, `torch.optim.lr_scheduler`, `torch.nn.utils.clip_grad_norm_`.
