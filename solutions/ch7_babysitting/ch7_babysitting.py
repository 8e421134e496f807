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
# # Exercise 7: Babysitting the learning process and hyperparameter search
#
# Most training runs that fail, fail in one of a handful of ways, and each way leaves a trace you can measure: a first
# loss far from where it should start, a loss that barely moves, a loss that climbs, units stuck on the flat parts of
# their activation function, a validation curve that parts from the training curve. In this exercise you write the tools
# that find those traces, and a function that names the problem of a run. The tests grade them on runs in which they
# plant a known problem.
#
# 1. **Before training**: `check_initial_loss` (does the first loss equal $\ln C$?) and `overfit_tiny_subset` (can the
#    model fit 20 examples?).
# 2. **Inside the network**: `update_ratios` (how large is a step next to the weights it changes?) and a
#    `TrainingMonitor` that watches every layer through forward and backward hooks.
# 3. **The learning rate**: `should_abort` (when to stop a run that blew up) and `lr_range_test` (Smith, 2017).
# 4. **Hyperparameter search**: `sample_log_uniform` and a coarse-to-fine `random_search` (Bergstra & Bengio, 2012).
# 5. **Reading a run**: `diagnose`, which names what is wrong with a run, in a fixed vocabulary.
#
# Conventions: PyTorch, on `device` (the GPU if there is one). The data are MNIST-1D signals (`float32`, 40 values each)
# and labels (`int64`, 10 classes), as NumPy arrays or tensors; your functions turn them into tensors themselves
# (`torch.as_tensor`). Results are plain Python data: floats, bools, strings, and lists and dicts of them (`.item()`
# turns a one-element tensor into a float). No function changes its arguments: one that trains works on a copy of
# the model (`copy.deepcopy`), except `lr_range_test`, whose job is to train the model and optimizer it is given and
# then put both back exactly as they were. The tests check that.
#
# Each graded cell shows some of its tests; more tests run when your notebook is graded, against PyTorch and against
# the tests' own replays of each recipe.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import copy
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import nnkit
from nnkit.data import load_mnist1d
from nnkit.testing import check_close, check_scalar

np.set_printoptions(precision=4, suppress=True)
# The networks here are small: on a CPU one thread is faster than two that wait for each other.
torch.set_num_threads(1)
device = nnkit.pick_device()
print("torch", torch.__version__, "| device for training:", device)


# %% [markdown] nbgrader={"grade": false, "grade_id": "data_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The data: MNIST-1D's 4000 training examples, and its 1000 test examples, which serve as the validation set in this
# exercise. Most tests use the small MLP below, with tanh activations (so that it can saturate).

# %% nbgrader={"grade": false, "grade_id": "data", "locked": true, "schema_version": 3, "solution": false, "task": false}
x_train, y_train, x_val, y_val = load_mnist1d()
print("training", x_train.shape, y_train.shape, "| validation", x_val.shape, y_val.shape)


def make_tanh_mlp(seed, hidden=64, depth=2, classes=10):
    """An MLP 40 -> hidden -> ... -> classes with a tanh after each hidden Linear (depth of them), in PyTorch's
    default initialization after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    layers, width = [], 40
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.Tanh()]
        width = hidden
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


# %% [markdown] nbgrader={"grade": false, "grade_id": "initial_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. Before training
#
# ### 1.1 The initial loss
#
# At initialization the weights are small, so a classifier's scores are all close to 0, its softmax is close to
# uniform, and its cross-entropy on every example is close to $-\ln(1/C) = \ln C$ for $C$ classes: $\ln 10 \approx 2.303$
# here. Measuring the loss before the first step is the cheapest check there is. A first loss well above $\ln C$ means
# that the network is confidently wrong from the start, typically because its last layer was initialized too large:
# large scores, a softmax far from uniform, and a large loss on every example whose class did not happen to get the
# largest score. With L2 regularization the objective at initialization is $\ln C$ *plus the penalty*: check the data
# loss alone, or expect the sum.
#
# **Task.** Write `check_initial_loss(model, x, y)`. It returns the pair `(measured, expected)` of Python floats:
#
# * `measured`, the mean cross-entropy (`F.cross_entropy`) of `model`'s scores for the examples `x` with the labels `y`,
#   computed without gradients, on the device where the model's parameters are;
# * `expected`, $\ln C$, where $C$ is the number of scores the model gives each example (the width of its output, not
#   the number of distinct labels in `y`: a small batch may miss some classes).
#
# The model is not changed.

# %% nbgrader={"grade": false, "grade_id": "initial_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def check_initial_loss(model, x, y):
    """(measured, expected): the mean cross-entropy of model's scores on (x, y), and ln C for the C scores the
    model gives each example. Python floats; computed without gradients on the model's device."""
    ### BEGIN SOLUTION
    where = next(model.parameters()).device
    inputs = torch.as_tensor(x, dtype=torch.float32).to(where)
    labels = torch.as_tensor(y, dtype=torch.int64).to(where)
    with torch.no_grad():
        scores = model(inputs)
        measured = F.cross_entropy(scores, labels).item()
    return float(measured), math.log(scores.shape[1])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_initial_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import torch
import torch.nn.functional as F
from nnkit.data import load_mnist1d
from nnkit.testing import check_scalar

x_all, y_all, _, _ = load_mnist1d()
x_some, y_some = x_all[:500], y_all[:500]
net = make_tanh_mlp(0)
measured, expected = check_initial_loss(net, x_some, y_some)
check_scalar(expected, math.log(10), "check_initial_loss: expected loss for 10 classes",
             hint="ln C: the cross-entropy of a uniform prediction over C classes")
with torch.no_grad():
    want = F.cross_entropy(net(torch.from_numpy(x_some)), torch.from_numpy(y_some)).item()
check_scalar(measured, want, "check_initial_loss: measured loss of a fresh tanh MLP on 500 examples", rtol=1e-5)
assert abs(measured - expected) < 0.1, f"a fresh MLP should start near ln 10: measured {measured}, expected {expected}"
big = make_tanh_mlp(0)
with torch.no_grad():
    big[-1].weight.mul_(30)
    big[-1].bias.mul_(30)
measured_big, _ = check_initial_loss(big, x_some, y_some)
with torch.no_grad():
    want_big = F.cross_entropy(big(torch.from_numpy(x_some)), torch.from_numpy(y_some)).item()
check_scalar(measured_big, want_big, "check_initial_loss: measured loss with a last layer 30 times too large",
             rtol=1e-5)
print(f"fresh MLP: {measured:.4f} (expected {expected:.4f}); last layer x30: {measured_big:.4f}")
### BEGIN HIDDEN TESTS
import numpy as np

rng_t = np.random.default_rng(7101)
net7 = make_tanh_mlp(3, hidden=16, depth=1, classes=7)
x_probe = torch.from_numpy(rng_t.normal(size=(37, 40)).astype(np.float32))
y_probe = torch.from_numpy(rng_t.integers(0, 3, size=37))  # only 3 of the 7 classes appear
kept = {k: v.clone() for k, v in net7.state_dict().items()}
measured7, expected7 = check_initial_loss(net7, x_probe, y_probe)
check_scalar(expected7, math.log(7), "check_initial_loss: expected loss of a model with 7 outputs whose labels "
             "use only 3 classes", hint="C is the number of scores the model gives, not the labels seen")
with torch.no_grad():
    want7 = F.cross_entropy(net7(x_probe), y_probe).item()
check_scalar(measured7, want7, "check_initial_loss: measured loss, 7 classes, tensors as inputs", rtol=1e-5)
assert isinstance(measured7, float) and isinstance(expected7, float), \
    f"check_initial_loss should return Python floats, got {type(measured7).__name__}, {type(expected7).__name__}"
for k, v in net7.state_dict().items():
    assert torch.equal(v, kept[k]), f"check_initial_loss changed the model's {k}"
### END HIDDEN TESTS


# %% [markdown] nbgrader={"grade": false, "grade_id": "overfit_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### 1.2 Overfit a tiny subset
#
# Before training on the whole data set, train on a handful of examples, say 20, with every regularization off. A
# network with thousands of parameters can memorize 20 examples: the training loss should fall to about 0 and the
# accuracy on those examples reach 100 %. If it does not, something is broken before any question of generalization
# comes up: a bug in the model (a layer cut off from the graph, labels that do not belong to their examples, a loss
# applied to the wrong scores) or a learning rate far too small. The check takes seconds.
#
# **Task.** Write `overfit_tiny_subset(model, x, y, steps, lr, device)`. Train a **copy** of `model`
# (`copy.deepcopy`), moved to `device` and in train mode, with `torch.optim.Adam(..., lr=lr)` and no weight decay
# (PyTorch's other defaults), for `steps` steps, each on all of `(x, y)` at once (full batch), minimizing the mean
# cross-entropy. Return `{"loss": [...], "accuracy": a}`: `loss[k]` is the loss computed in step `k`, before that step's
# update (a list of `steps` Python floats), and `a` the fraction of the examples the copy classifies correctly after the
# last step (a Python float). The model passed in is not changed.

# %% nbgrader={"grade": false, "grade_id": "overfit_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def overfit_tiny_subset(model, x, y, steps, lr, device):
    """Train a copy of model on all of (x, y) at every step with Adam(lr), no weight decay.
    Returns {"loss": [float] * steps (each step's loss before its update), "accuracy": float (after the last step)}."""
    ### BEGIN SOLUTION
    net = copy.deepcopy(model).to(device)
    net.train()
    inputs = torch.as_tensor(x, dtype=torch.float32).to(device)
    labels = torch.as_tensor(y, dtype=torch.int64).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=0.0)
    curve = []
    for _ in range(steps):
        loss = F.cross_entropy(net(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curve.append(loss.item())
    with torch.no_grad():
        hits = net(inputs).argmax(dim=1) == labels
    return {"loss": curve, "accuracy": hits.float().mean().item()}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_overfit", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import nnkit
import torch
import torch.nn.functional as F
from nnkit.data import load_mnist1d
from nnkit.testing import check_close, check_scalar

x_all, y_all, _, _ = load_mnist1d()
x_tiny, y_tiny = x_all[:20], y_all[:20]
net = make_tanh_mlp(1)
kept = {k: v.clone() for k, v in net.state_dict().items()}
with torch.no_grad():
    first = F.cross_entropy(net(torch.from_numpy(x_tiny)), torch.from_numpy(y_tiny)).item()
run = overfit_tiny_subset(net, x_tiny, y_tiny, steps=150, lr=1e-2, device=nnkit.pick_device())
for k, v in net.state_dict().items():
    assert torch.equal(v.cpu(), kept[k].cpu()), f"overfit_tiny_subset changed the model passed in ({k}): train a copy"
assert isinstance(run, dict) and {"loss", "accuracy"} <= set(run), \
    f"overfit_tiny_subset should return a dict with 'loss' and 'accuracy', got {run!r:.200}"
losses = run["loss"]
assert isinstance(losses, list) and len(losses) == 150 and all(isinstance(v, float) for v in losses), \
    f"'loss' should be a list of 150 Python floats, one per step, got {losses!r:.200}"
check_scalar(losses[0], first, "overfit_tiny_subset: the loss of step 0 (before any update)", rtol=1e-4,
             hint="record each step's loss as computed in that step, before optimizer.step()")
assert losses[-1] < 0.05 and run["accuracy"] == 1.0, \
    f"the MLP should memorize 20 examples in 150 Adam steps at lr 1e-2: last loss {losses[-1]:.4f}, " \
    f"accuracy {run['accuracy']}"
print(f"20 examples: loss {losses[0]:.3f} -> {losses[-1]:.4f}, accuracy {run['accuracy']:.2f}")
### BEGIN HIDDEN TESTS
import copy
import numpy as np

for seed, count, steps, lr in [(2, 30, 40, 3e-3), (4, 12, 25, 2e-2)]:
    x_few, y_few = torch.from_numpy(x_all[100:100 + count]), torch.from_numpy(y_all[100:100 + count])
    start = make_tanh_mlp(seed, hidden=32)
    replica = copy.deepcopy(start)
    adam = torch.optim.Adam(replica.parameters(), lr=lr)
    want = []
    for _ in range(steps):
        objective = F.cross_entropy(replica(x_few), y_few)
        adam.zero_grad()
        objective.backward()
        adam.step()
        want.append(objective.item())
    with torch.no_grad():
        want_acc = (replica(x_few).argmax(1) == y_few).double().mean().item()
    got = overfit_tiny_subset(start, x_few.numpy(), y_few.numpy(), steps, lr, "cpu")
    check_close(got["loss"], want, f"overfit_tiny_subset against a replay with torch.optim.Adam (seed {seed}, "
                f"{count} examples, {steps} steps, lr {lr})", rtol=1e-4, atol=1e-6,
                hint="Adam with PyTorch's defaults and no weight decay, full batch, the loss before each update")
    assert abs(got["accuracy"] - want_acc) < 1e-6, \
        f"overfit_tiny_subset: accuracy {got['accuracy']}, but the replayed model has {want_acc} (seed {seed})"
### END HIDDEN TESTS


# %% [markdown] nbgrader={"grade": false, "grade_id": "ratios_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. Inside the network
#
# ### 2.1 The update-to-weight ratio
#
# How large is one step next to the weights it changes? For a weight tensor $W$ before a step and $W'$ after it,
#
# $$r = \frac{\lVert W' - W \rVert_2}{\lVert W \rVert_2},$$
#
# with the Euclidean norm over all the entries of the tensor (for a matrix, the Frobenius norm). A rule of thumb from
# Karpathy's CS231n notes: around $10^{-3}$ is healthy; a ratio far below it suggests a learning rate too low, far above
# it a learning rate too high. Measure $W' - W$ from a real optimizer step: it then includes everything the optimizer
# does (the learning rate, momentum, Adam's per-coordinate scaling). The gradient alone is not the update; for plain
# SGD the update is $-\eta\, \nabla_W L$.
#
# **Task.** Write `update_ratios(before, after)`: `before` and `after` are dicts from names to arrays or tensors of
# the same shapes, for instance `{name: p.detach().clone() for name, p in model.named_parameters()}` taken before and
# after one optimizer step. Return `{name: r}` for every name in `before`, as Python floats computed in `float64`. A
# tensor with $\lVert W \rVert_2 = 0$ gets `math.inf` if it changed and `0.0` if it did not. The arguments are not
# changed.

# %% nbgrader={"grade": false, "grade_id": "ratios_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def update_ratios(before, after):
    """{name: ||after[name] - before[name]||_2 / ||before[name]||_2} (norm over all entries, float64), as floats;
    a zero tensor gets inf if it changed, 0.0 if not."""
    ### BEGIN SOLUTION
    ratios = {}
    for name, old in before.items():
        old = torch.as_tensor(old).detach().cpu().double()
        new = torch.as_tensor(after[name]).detach().cpu().double()
        step = torch.linalg.vector_norm(new - old).item()
        scale = torch.linalg.vector_norm(old).item()
        if scale > 0:
            ratios[name] = step / scale
        else:
            ratios[name] = math.inf if step > 0 else 0.0
    return ratios
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_update_ratios", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np
from nnkit.testing import check_scalar

before = {"w": np.array([[3.0, 4.0]]), "b": np.array([1.0, 0.0]), "still": np.zeros(3), "born": np.zeros(2)}
after = {"w": np.array([[3.0, 4.5]]), "b": np.array([0.0, 0.0]), "still": np.zeros(3), "born": np.array([0.0, 1e-3])}
ratios = update_ratios(before, after)
assert isinstance(ratios, dict) and set(ratios) == set(before), \
    f"update_ratios should return one ratio for each name of before, got {ratios!r:.200}"
check_scalar(ratios["w"], 0.1, "update_ratios['w']: ||[0, 0.5]|| / ||[3, 4]||",
             hint="the Euclidean norm of the whole change over the Euclidean norm of the weights before the step")
check_scalar(ratios["b"], 1.0, "update_ratios['b']: ||[-1, 0]|| / ||[1, 0]||")
assert ratios["still"] == 0.0 and ratios["born"] == math.inf, \
    f"a zero tensor gets 0.0 if unchanged and inf if changed, got {ratios['still']}, {ratios['born']}"
assert all(isinstance(v, float) for v in ratios.values()), f"the ratios should be Python floats: {ratios}"
print("update_ratios: visible checks passed")
### BEGIN HIDDEN TESTS
import copy
import torch
import torch.nn.functional as F

rng_t = np.random.default_rng(7102)
x_probe = torch.from_numpy(rng_t.normal(size=(50, 40)).astype(np.float32))
y_probe = torch.from_numpy(rng_t.integers(0, 10, size=50))
for make_optimizer, label in [(lambda ps: torch.optim.SGD(ps, lr=0.3), "SGD lr 0.3"),
                              (lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9), "SGD lr 0.01, momentum 0.9"),
                              (lambda ps: torch.optim.Adam(ps, lr=1e-3), "Adam lr 1e-3")]:
    model = make_tanh_mlp(5, hidden=24)
    optimizer = make_optimizer(model.parameters())
    for _ in range(2):
        weights_then = {n: p.detach().clone() for n, p in model.named_parameters()}
        optimizer.zero_grad()
        F.cross_entropy(model(x_probe), y_probe).backward()
        optimizer.step()
        weights_now = {n: p.detach().clone() for n, p in model.named_parameters()}
    kept = copy.deepcopy(weights_then)
    got = update_ratios(weights_then, weights_now)
    for n in weights_then:
        a, b = weights_then[n].double().numpy().ravel(), weights_now[n].double().numpy().ravel()
        check_scalar(got[n], float(np.sqrt(np.sum((b - a) ** 2)) / np.sqrt(np.sum(a ** 2))),
                     f"update_ratios['{n}'] after a step of {label}", rtol=1e-9, atol=0.0)
        assert torch.equal(weights_then[n], kept[n]), f"update_ratios changed its argument before['{n}']"
wide_before = {"m": rng_t.normal(size=(6, 7)) * 5.0}
wide_after = {"m": wide_before["m"] + rng_t.normal(size=(6, 7)) * 0.01}
check_scalar(update_ratios(wide_before, wide_after)["m"],
             float(np.linalg.norm(wide_after["m"] - wide_before["m"]) / np.linalg.norm(wide_before["m"])),
             "update_ratios on float64 NumPy matrices", rtol=1e-12, atol=0.0)
### END HIDDEN TESTS


# %% [markdown] nbgrader={"grade": false, "grade_id": "monitor_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### 2.2 A training monitor with hooks
#
# PyTorch lets you run your own function in the middle of a forward or backward pass, without touching the model's code:
#
# * `module.register_forward_hook(hook)` makes every forward pass of `module` call `hook(module, inputs, output)` with
#   the module's output;
# * `tensor.register_hook(hook)` makes every backward pass that reaches `tensor` call `hook(grad)` with the gradient
#   of the loss with respect to that tensor, $\partial L / \partial\, \text{tensor}$.
#
# Both return a handle whose `.remove()` detaches the hook. With them, a monitor can record, layer by layer, the
# statistics of the activations and the size of the gradients while an ordinary training loop runs.
#
# What to look at: the mean and spread of each layer's activations (do they collapse towards 0 or blow up?), and the
# fraction of **saturated** units. A tanh unit whose output is close to $\pm 1$ passes almost no gradient back
# ($\tanh' = 1 - \tanh^2 < 0.06$ when $|\tanh| > 0.97$), and a ReLU whose output is 0 passes none. A layer in which most
# units are saturated has stopped learning.
#
# **Task.** Write the class `TrainingMonitor(model, threshold=0.97)`:
#
# * When it is created, it attaches a forward hook to every `nn.Tanh` and every `nn.ReLU` module of `model`, at any
#   depth (`model.named_modules()`), and a hook to the `weight` tensor of every `nn.Linear` module.
# * `activation_stats()` returns `{name: {"mean": m, "std": s, "saturated": f}}` for every watched activation module
#   that has run forward, from its output in its most recent forward pass, over all the entries of that output: the
#   mean, the standard deviation with the $1/n$ normalization (`correction=0`), and the fraction of saturated entries:
#   $|a| > $ `threshold` for `nn.Tanh`, $a = 0$ for `nn.ReLU`. The names are those of `model.named_modules()`
#   (`"1"`, `"body.3"`, ...).
# * `gradient_norms()` returns `{name: g}` for every `nn.Linear` whose weight has received a gradient: $g$ is the
#   Euclidean norm (over all entries) of $\partial L / \partial W$ in the most recent backward pass, as the hook saw
#   it (not an accumulated `.grad`).
# * `remove()` detaches all of its hooks; what the monitor recorded before stays readable.
#
# The numbers are Python floats, and each call returns new dicts. The monitor lives in your kernel, attached to a
# model; the tests reach it through the provided function `train_with_monitor` below. It attaches a monitor to a copy
# of a model, trains the copy for a few full-batch SGD steps and returns what the monitor reported after each step.
# The tests compute the same numbers themselves and compare.

# %% nbgrader={"grade": false, "grade_id": "monitor_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
class TrainingMonitor:
    """Forward hooks on every nn.Tanh / nn.ReLU module (mean, std, saturated fraction of the output) and hooks on
    the weight of every nn.Linear (norm of dL/dW), by module name; read back with activation_stats() and
    gradient_norms(); remove() detaches the hooks."""

    def __init__(self, model, threshold=0.97):
        ### BEGIN SOLUTION
        self.threshold = threshold
        self._activations, self._gradients, self._handles = {}, {}, []

        def on_output(name):
            def hook(module, inputs, output):
                a = output.detach().to("cpu", torch.float64)
                flat_part = (a.abs() > self.threshold) if isinstance(module, nn.Tanh) else (a == 0)
                self._activations[name] = {"mean": a.mean().item(), "std": a.std(correction=0).item(),
                                           "saturated": flat_part.double().mean().item()}
            return hook

        def on_gradient(name):
            def hook(grad):
                self._gradients[name] = torch.linalg.vector_norm(grad.detach().to("cpu", torch.float64)).item()
            return hook

        for name, module in model.named_modules():
            if isinstance(module, (nn.Tanh, nn.ReLU)):
                self._handles.append(module.register_forward_hook(on_output(name)))
            elif isinstance(module, nn.Linear):
                self._handles.append(module.weight.register_hook(on_gradient(name)))
        ### END SOLUTION

    def activation_stats(self):
        """{module name: {"mean": float, "std": float, "saturated": float}} of the most recent forward pass."""
        ### BEGIN SOLUTION
        return {name: dict(stats) for name, stats in self._activations.items()}
        ### END SOLUTION

    def gradient_norms(self):
        """{Linear module name: norm of dL/dW of the most recent backward pass}."""
        ### BEGIN SOLUTION
        return dict(self._gradients)
        ### END SOLUTION

    def remove(self):
        """Detach every hook; the recorded numbers stay readable."""
        ### BEGIN SOLUTION
        for handle in self._handles:
            handle.remove()
        self._handles = []
        ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "monitor_net", "locked": true, "schema_version": 3, "solution": false, "task": false}
def small_mixed_net():
    """Linear(2, 3) -> Tanh -> Linear(3, 2) -> ReLU -> Linear(2, 2), with fixed weights for hand checks."""
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    values = [[[2.0, 0.0], [0.0, 1.0], [1.5, 1.5]], [0.0, 0.5, -0.5],
              [[1.0, -1.0, 0.5], [-0.5, 1.0, 1.0]], [0.1, -0.2],
              [[1.0, 0.0], [0.0, -1.0]], [0.0, 0.0]]
    with torch.no_grad():
        for p, v in zip(net.parameters(), values):
            p.copy_(torch.tensor(v))
    return net


# %% nbgrader={"grade": false, "grade_id": "monitor_driver", "locked": true, "schema_version": 3, "solution": false, "task": false}
def train_with_monitor(model, x, y, lr, steps, device, threshold=0.97):
    """Attach a TrainingMonitor(threshold) to a copy of model, take `steps` full-batch SGD steps (learning rate lr)
    on (x, y), and read activation_stats() and gradient_norms() after each step. Then remove the monitor and run the
    copy once more on 2 * x, a pass the monitor must not see.
    Returns {"activations": [one dict per step], "gradients": [one dict per step], "after_remove": a dict}."""
    watched = copy.deepcopy(model).to(device)
    signals = torch.as_tensor(x, dtype=torch.float32).to(device)
    targets = torch.as_tensor(y, dtype=torch.int64).to(device)
    monitor = TrainingMonitor(watched, threshold)
    sgd = torch.optim.SGD(watched.parameters(), lr=lr)
    activations, gradients = [], []
    for _ in range(steps):
        sgd.zero_grad()
        F.cross_entropy(watched(signals), targets).backward()
        sgd.step()
        activations.append(monitor.activation_stats())
        gradients.append(monitor.gradient_norms())
    monitor.remove()
    with torch.no_grad():
        watched(2 * signals)
    return {"activations": activations, "gradients": gradients, "after_remove": monitor.activation_stats()}



# %% nbgrader={"grade": true, "grade_id": "test_monitor_activations", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_close, check_scalar

x_hand = np.array([[1.0, 0.5], [-2.0, 1.0], [0.1, -0.3], [3.0, 3.0]], dtype=np.float32)
y_hand = np.array([0, 1, 1, 0])
report = train_with_monitor(small_mixed_net(), x_hand, y_hand, lr=0.0, steps=1, device="cpu")
seen = report["activations"][0]
assert set(seen) == {"1", "3"}, f"the monitor should report the Tanh '1' and the ReLU '3', got {sorted(seen)}"
hidden_1 = np.tanh(x_hand.astype(np.float64) @ np.array([[2.0, 0.0], [0.0, 1.0], [1.5, 1.5]]).T + [0.0, 0.5, -0.5])
hidden_3 = np.maximum(hidden_1 @ np.array([[1.0, -1.0, 0.5], [-0.5, 1.0, 1.0]]).T + [0.1, -0.2], 0.0)
for name, a, flat in [("1", hidden_1, np.abs(hidden_1) > 0.97), ("3", hidden_3, hidden_3 == 0)]:
    check_close([seen[name]["mean"], seen[name]["std"], seen[name]["saturated"]], [a.mean(), a.std(), flat.mean()],
                f"activation_stats()['{name}']: [mean, std, saturated] over the 4 x {a.shape[1]} outputs",
                rtol=1e-5, atol=1e-6, hint="std with 1/n; saturated: |a| > threshold for tanh, a == 0 for ReLU")
print("tanh layer:", seen["1"], "\nReLU layer:", seen["3"])
assert report["after_remove"] == report["activations"][-1], \
    "after remove(), a forward pass must not change what the monitor reports"
### BEGIN HIDDEN TESTS
import copy
from collections import OrderedDict
import torch.nn as nn
import torch.nn.functional as F


def hooked_replay(model, x, y, lr, steps, threshold):
    """The same training with the test's own hooks: per step, the activation statistics and the weight gradient norms."""
    replica = copy.deepcopy(model)
    outputs = {}

    def remember(name):
        def hook(layer, layer_input, layer_output):
            outputs[name] = (isinstance(layer, nn.Tanh), layer_output.detach().double())
        return hook

    handles = [m.register_forward_hook(remember(n)) for n, m in replica.named_modules() if isinstance(m, (nn.Tanh, nn.ReLU))]
    sgd = torch.optim.SGD(replica.parameters(), lr=lr)
    acts, grads = [], []
    for _ in range(steps):
        sgd.zero_grad()
        F.cross_entropy(replica(x), y).backward()
        grads.append({n: torch.linalg.vector_norm(m.weight.grad.double()).item()
                      for n, m in replica.named_modules() if isinstance(m, nn.Linear)})
        sgd.step()
        acts.append({n: {"mean": o.mean().item(), "std": o.std(correction=0).item(),
                         "saturated": ((o.abs() > threshold) if tanh else (o == 0)).double().mean().item()}
                     for n, (tanh, o) in outputs.items()})
    for h in handles:
        h.remove()
    return acts, grads


rng_t = np.random.default_rng(7103)
x_probe = torch.from_numpy(rng_t.normal(size=(64, 40)).astype(np.float32))
y_probe = torch.from_numpy(rng_t.integers(0, 10, size=64))
torch.manual_seed(11)
nested = nn.Sequential(OrderedDict(body=nn.Sequential(nn.Linear(40, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(),
                                                       nn.Linear(32, 32), nn.Tanh()), head=nn.Linear(32, 10)))
with torch.no_grad():
    nested.body[0].weight.mul_(5.0)  # the first tanh layer is partly saturated
for threshold, lr, steps in [(0.97, 0.5, 4), (0.9, 0.05, 3)]:
    want, _ = hooked_replay(nested, x_probe, y_probe, lr, steps, threshold)
    got = train_with_monitor(nested, x_probe.numpy(), y_probe.numpy(), lr, steps, "cpu", threshold)
    for k in range(steps):
        assert set(got["activations"][k]) == set(want[k]), \
            f"activation_stats() names after step {k + 1}: got {sorted(got['activations'][k])}, expected {sorted(want[k])}"
        for name in want[k]:
            for key, tol in [("mean", 1e-6), ("std", 1e-6), ("saturated", 1e-3)]:
                check_scalar(got["activations"][k][name][key], want[k][name][key],
                             f"activation_stats()['{name}']['{key}'] after step {k + 1} (threshold {threshold}, lr {lr})",
                             rtol=1e-5, atol=tol)
    assert got["after_remove"] == got["activations"][-1], "remove() should detach the forward hooks"
assert 0.2 < want[0]["body.1"]["saturated"] < 0.95  # the planted saturation is there
### END HIDDEN TESTS


# %% nbgrader={"grade": true, "grade_id": "test_monitor_gradients", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import copy
import numpy as np
import torch
import torch.nn.functional as F
from nnkit.testing import check_close, check_scalar

x_hand = np.array([[1.0, 0.5], [-2.0, 1.0], [0.1, -0.3], [3.0, 3.0]], dtype=np.float32)
y_hand = np.array([0, 1, 1, 0])
report = train_with_monitor(small_mixed_net(), x_hand, y_hand, lr=0.5, steps=3, device="cpu")
replica = small_mixed_net()
sgd = torch.optim.SGD(replica.parameters(), lr=0.5)
for step in range(3):
    loss = F.cross_entropy(replica(torch.from_numpy(x_hand)), torch.from_numpy(y_hand))
    grads = torch.autograd.grad(loss, [replica[0].weight, replica[2].weight, replica[4].weight], retain_graph=True)
    got = report["gradients"][step]
    assert set(got) == {"0", "2", "4"}, f"gradient_norms() should name the Linear layers '0', '2', '4', got {sorted(got)}"
    check_close([got["0"], got["2"], got["4"]], [g.norm().item() for g in grads],
                f"gradient_norms() after step {step + 1}: norms of dL/dW of the three Linear layers", rtol=1e-5,
                atol=1e-7, hint="the Euclidean norm over all entries of the weight's gradient")
    sgd.zero_grad()
    loss.backward()
    sgd.step()
print("gradient norms after each step:", report["gradients"])
### BEGIN HIDDEN TESTS
import torch.nn as nn

rng_t = np.random.default_rng(7104)
x_probe = torch.from_numpy(rng_t.normal(size=(48, 40)).astype(np.float32))
y_probe = torch.from_numpy(rng_t.integers(0, 10, size=48))
torch.manual_seed(12)
deep = nn.Sequential(nn.Linear(40, 20), nn.ReLU(), nn.Sequential(nn.Linear(20, 20), nn.Tanh()), nn.Linear(20, 10))
replica = copy.deepcopy(deep)
sgd = torch.optim.SGD(replica.parameters(), lr=0.2)
want = []
for _ in range(4):
    sgd.zero_grad()
    F.cross_entropy(replica(x_probe), y_probe).backward()
    want.append({n: m.weight.grad.double().norm().item() for n, m in replica.named_modules() if isinstance(m, nn.Linear)})
    sgd.step()
got = train_with_monitor(deep, x_probe.numpy(), y_probe.numpy(), 0.2, 4, "cpu")["gradients"]
for k in range(4):
    assert set(got[k]) == set(want[k]), f"gradient_norms() names: got {sorted(got[k])}, expected {sorted(want[k])}"
    for name in want[k]:
        check_scalar(got[k][name], want[k][name], f"gradient_norms()['{name}'] after step {k + 1} (nested model)",
                     rtol=1e-5, atol=1e-8)
### END HIDDEN TESTS


# %% [markdown] nbgrader={"grade": false, "grade_id": "abort_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. The learning rate
#
# ### 3.1 When to stop a run
#
# A run whose loss has become NaN or infinite never recovers, and a run whose loss has climbed far above where it
# started very rarely does. Stopping such a run early gives its budget to other configurations; in a search over many
# runs, most of the time saved comes from this rule.
#
# **Task.** Write `should_abort(history, initial_loss)`. `history` is the list of losses so far (Python floats, which
# may be `nan` or `inf`). Return `True` if any of them is not finite (`nan`, `inf` or `-inf`) or is **strictly
# greater** than `3 * initial_loss`, and `False` otherwise (an empty history gives `False`), as a Python bool. Beware:
# `nan > x` is `False` for every `x`, so a comparison alone never catches a NaN.

# %% nbgrader={"grade": false, "grade_id": "abort_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def should_abort(history, initial_loss):
    """True if a loss in history is not finite or is greater than 3 * initial_loss."""
    ### BEGIN SOLUTION
    return any(not math.isfinite(value) or value > 3 * initial_loss for value in history)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_should_abort", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math

cases = [([], 2.5, False), ([2.5, 2.1, 1.7], 2.5, False), ([2.5, 7.5], 2.5, False), ([2.5, 7.5000001], 2.5, True),
         ([2.0, float("nan")], 2.5, True), ([2.0, float("inf"), 1.0], 2.5, True), ([float("-inf")], 2.5, True),
         ([2.0, 8.0, 2.0], 2.5, True)]
for history, initial, want in cases:
    got = should_abort(list(history), initial)
    assert got is want, f"should_abort({history}, initial_loss={initial}) should be {want}, got {got!r}"
print("should_abort: visible checks passed")
### BEGIN HIDDEN TESTS
import numpy as np

rng_t = np.random.default_rng(7105)
for trial in range(200):
    initial = float(rng_t.uniform(0.5, 3.0))
    trace = list(initial * np.exp(rng_t.normal(-0.2, 0.4, size=int(rng_t.integers(1, 12)))))
    kind = trial % 4
    if kind == 1:
        trace[int(rng_t.integers(len(trace)))] = float("nan")
    elif kind == 2:
        trace[int(rng_t.integers(len(trace)))] = 3 * initial * float(rng_t.uniform(1.0001, 2.0))
    elif kind == 3:
        trace[int(rng_t.integers(len(trace)))] = float(rng_t.choice([np.inf, -np.inf]))
    trace = [float(v) for v in trace]
    want = bool(np.any(~np.isfinite(trace)) or np.nanmax(np.where(np.isfinite(trace), trace, -1.0)) > 3 * initial)
    assert should_abort(list(trace), initial) is want, \
        f"should_abort({[round(v, 4) for v in trace]}, initial_loss={initial:.4f}) should be {want}"
### END HIDDEN TESTS


# %% [markdown] nbgrader={"grade": false, "grade_id": "range_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### 3.2 The learning-rate range test
#
# Smith (2017) finds a usable learning rate in one short run: train for a few hundred steps while the learning rate
# grows exponentially from far too small to far too large, and record the loss at every step. While the learning rate is
# too small the loss stays flat; where it becomes useful the loss falls; when it becomes too large the loss turns up and
# explodes. A good learning rate sits where the loss falls fastest. The run changes the model and the optimizer, so a
# range test puts them back afterwards: the real training starts from the same weights and the same optimizer state.
#
# **Task.** Write `lr_range_test(model, optimizer, x, y, lr_min=1e-5, lr_max=10.0, num_steps=100, batch_size=64,
# beta=0.98, diverge=4.0, seed=0, skip_start=10, skip_end=5)`, exactly as follows (the tests replay it):
#
# * **Learning rates.** Step $k = 0, 1, \dots,$ `num_steps` $- 1$ uses $\eta_k = \eta_{\min} (\eta_{\max}/\eta_{\min})^{k/(\text{num\_steps} - 1)}$,
#   written into every `param_group` of the optimizer before the step.
# * **Minibatches.** `x` and `y` go to the device of the model's parameters; the model is in train mode. One
#   `torch.Generator()` seeded with `seed` draws `order = torch.randperm(n, generator=...)`; each step takes the next
#   `batch_size` examples of `order` (`order[p:p + batch_size]`, then `p` grows by `batch_size`); when `p` reaches `n`, a new
#   `randperm` from the same generator starts again at `p = 0`.
# * **Smoothed loss.** At step $k$, with $\ell_k$ the mean cross-entropy of its minibatch:
#   $a \leftarrow \beta a + (1 - \beta)\,\ell_k$ (with $a = 0$ before step 0) and $s_k = a / (1 - \beta^{k+1})$, the
#   bias correction Adam uses. Record $\eta_k$, $\ell_k$ and $s_k$.
# * **Stop at divergence.** After recording step $k$, stop, without taking that step's update, if $s_k$ is not finite
#   or $s_k >$ `diverge` $\times \min(s_0, \dots, s_{k-1})$. Otherwise: zero the gradients, backward, `optimizer.step()`.
# * **Restore.** Afterwards the model's parameters and buffers and the optimizer's state (its moments and its learning
#   rate) are exactly what they were before the call. Careful: `model.state_dict()` and `optimizer.state_dict()` hold
#   *references* to the live tensors, which training changes in place; keep deep copies (`copy.deepcopy`) and load them
#   back with `load_state_dict`.
# * **Suggestion.** With `g = np.gradient(losses)` over all the recorded smoothed losses (central differences inside,
#   one-sided at the two ends), the suggestion is `lrs[i]` for the index `i` with the smallest `g[i]` among
#   `skip_start <= i < len(losses) - skip_end` (the first such index on a tie): the steepest descent of the smoothed
#   curve. The learning rates are evenly spaced in $\log \eta$, so per step is per unit of $\log \eta$. The first points
#   are skipped because their smoothed values average only a few noisy minibatch losses, the last ones because they are
#   the explosion. If no index is left, the suggestion is `None`.
#
# Return `{"lrs": [...], "losses": [...], "raw_losses": [...], "suggestion": float or None}`: the learning rates, the
# smoothed losses $s_k$ and the minibatch losses $\ell_k$ of the recorded steps, as Python floats.
#
# The tests cannot hand you an optimizer (it would reach your code as a detached copy), so they go through the
# provided `range_test_after_warmup` below, which builds one, trains for a few steps so that it holds momentum buffers
# or Adam moments, and calls your `lr_range_test`.

# %% nbgrader={"grade": false, "grade_id": "range_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def lr_range_test(model, optimizer, x, y, lr_min=1e-5, lr_max=10.0, num_steps=100, batch_size=64, beta=0.98,
                  diverge=4.0, seed=0, skip_start=10, skip_end=5):
    """Smith's range test with an exponential sweep from lr_min to lr_max, a bias-corrected exponential moving
    average of the loss, a stop at divergence, and model and optimizer restored afterwards.
    Returns {"lrs": [...], "losses": [smoothed], "raw_losses": [...], "suggestion": lr of steepest descent or None}."""
    ### BEGIN SOLUTION
    where = next(model.parameters()).device
    inputs = torch.as_tensor(x, dtype=torch.float32).to(where)
    labels = torch.as_tensor(y, dtype=torch.int64).to(where)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    model.train()
    n = len(inputs)
    generator = torch.Generator().manual_seed(seed)
    order, position = torch.randperm(n, generator=generator), 0
    lrs, smoothed, raw = [], [], []
    average, lowest = 0.0, math.inf
    for k in range(num_steps):
        lr = lr_min * (lr_max / lr_min) ** (k / (num_steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        if position >= n:
            order, position = torch.randperm(n, generator=generator), 0
        batch = order[position:position + batch_size].to(where)
        position += batch_size
        loss = F.cross_entropy(model(inputs[batch]), labels[batch])
        value = loss.item()
        average = beta * average + (1 - beta) * value
        current = average / (1 - beta ** (k + 1))
        lrs.append(lr)
        raw.append(value)
        smoothed.append(current)
        if not math.isfinite(current) or current > diverge * lowest:
            break
        lowest = min(lowest, current)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_optimizer)
    suggestion = None
    if len(smoothed) - skip_end > skip_start:
        slope = np.gradient(np.array(smoothed)) if len(smoothed) > 1 else np.zeros(1)
        steepest = skip_start + int(np.argmin(slope[skip_start:len(smoothed) - skip_end]))
        suggestion = lrs[steepest]
    return {"lrs": lrs, "losses": smoothed, "raw_losses": raw, "suggestion": suggestion}
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "range_driver", "locked": true, "schema_version": 3, "solution": false, "task": false}
def range_test_after_warmup(model, x, y, optimizer_name, warmup_steps, device, **options):
    """Move model to device and build its optimizer: "sgd" is torch.optim.SGD(lr=0.05, momentum=0.9), "adam"
    torch.optim.Adam(lr=1e-3). Take warmup_steps full-batch steps on the first 256 examples of (x, y), so that the
    optimizer holds a state, then call lr_range_test(model, optimizer, x, y, **options).
    Returns {"result": what lr_range_test returned, "lr": the optimizer's learning rate afterwards,
    "state": [the optimizer's state of each parameter afterwards, in the order of model.parameters()]}.
    The warm-up trains the model in place (that is part of the setup); lr_range_test must leave it as it found it."""
    model.to(device)
    signals = torch.as_tensor(x, dtype=torch.float32).to(device)
    targets = torch.as_tensor(y, dtype=torch.int64).to(device)
    if optimizer_name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(warmup_steps):
        optimizer.zero_grad()
        F.cross_entropy(model(signals[:256]), targets[:256]).backward()
        optimizer.step()
    result = lr_range_test(model, optimizer, signals, targets, **options)
    state = [{key: value.detach().cpu() if torch.is_tensor(value) else value
              for key, value in optimizer.state[p].items()} for p in model.parameters()]
    return {"result": result, "lr": optimizer.param_groups[0]["lr"], "state": state}


# %% nbgrader={"grade": true, "grade_id": "test_range_test_curve", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import math
import nnkit
import numpy as np
from nnkit.data import load_mnist1d
from nnkit.testing import check_close

x_all, y_all, _, _ = load_mnist1d()
x_some, y_some = x_all[:2000], y_all[:2000]
out = range_test_after_warmup(make_tanh_mlp(0), x_some, y_some, "sgd", 5, nnkit.pick_device(),
                              lr_min=1e-4, lr_max=10.0, num_steps=100, diverge=2.0)["result"]
lrs, losses, raw = out["lrs"], out["losses"], out["raw_losses"]
assert len(lrs) == len(losses) == len(raw) and 20 < len(lrs) <= 100, \
    f"lrs, losses and raw_losses should have one entry per recorded step: lengths {len(lrs)}, {len(losses)}, {len(raw)}"
assert all(isinstance(v, float) for v in lrs + losses + raw), "lrs, losses and raw_losses should hold Python floats"
k = np.arange(len(lrs))
check_close(lrs, 1e-4 * (10.0 / 1e-4) ** (k / 99), "lr_range_test: the learning rates of the recorded steps",
            rtol=1e-9, hint="lr_k = lr_min * (lr_max / lr_min) ** (k / (num_steps - 1))")
average, want_smooth = 0.0, []
for step, value in enumerate(raw):
    average = 0.98 * average + 0.02 * value
    want_smooth.append(average / (1 - 0.98 ** (step + 1)))
check_close(losses, want_smooth, "lr_range_test: smoothed losses recomputed from raw_losses", rtol=1e-9,
            hint="a = beta a + (1 - beta) loss from a = 0, then divide by 1 - beta ** (k + 1)")
for step in range(1, len(losses) - 1):
    assert losses[step] <= 2.0 * min(losses[:step]), \
        f"the run should have stopped at step {step}: smoothed loss {losses[step]:.3f} > 2 x {min(losses[:step]):.3f}"
assert len(losses) < 100 and losses[-1] > 2.0 * min(losses[:-1]), \
    f"with lr up to 10 and diverge=2 the loss should explode and stop the test; last smoothed loss {losses[-1]:.3f}"
slope = np.gradient(np.array(losses))
steepest = 10 + int(np.argmin(slope[10:len(losses) - 5]))
check_close(out["suggestion"], lrs[steepest], "lr_range_test: suggestion (steepest descent of the smoothed loss)",
            rtol=1e-12)
print(f"{len(lrs)} steps recorded, stopped at lr {lrs[-1]:.3g}; suggestion {out['suggestion']:.3g}")
### BEGIN HIDDEN TESTS
import copy
import torch
import torch.nn.functional as F


def replay_range_test(model, optimizer, x, y, lr_min, lr_max, num_steps, batch_size, beta, diverge, seed):
    """The test's own sweep, on the model and optimizer given (which it trains): lrs, smoothed and raw losses."""
    deck = torch.Generator()
    deck.manual_seed(seed)
    perm, at = torch.randperm(len(x), generator=deck), 0
    rates, smooth, plain, ema = [], [], [], 0.0
    for step in range(num_steps):
        rate = math.exp(math.log(lr_min) + math.log(lr_max / lr_min) * step / (num_steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = rate
        if at >= len(x):
            perm, at = torch.randperm(len(x), generator=deck), 0
        rows = perm[at:at + batch_size]
        at += batch_size
        objective = F.cross_entropy(model(x[rows]), y[rows])
        ema = beta * ema + (1 - beta) * objective.item()
        rates.append(rate)
        plain.append(objective.item())
        smooth.append(ema / -math.expm1((step + 1) * math.log(beta)))
        if not math.isfinite(smooth[-1]) or (step > 0 and smooth[-1] > diverge * min(smooth[:-1])):
            break
        optimizer.zero_grad()
        objective.backward()
        optimizer.step()
    return rates, smooth, plain


xs, ys = torch.from_numpy(x_all[:1000]), torch.from_numpy(y_all[:1000])
for name, options in [("sgd", dict(lr_min=1e-3, lr_max=30.0, num_steps=60, batch_size=50, beta=0.9, diverge=3.0, seed=3)),
                      ("adam", dict(lr_min=1e-5, lr_max=1.0, num_steps=70, batch_size=128, beta=0.95, diverge=1.5, seed=4))]:
    start = make_tanh_mlp(6, hidden=32)
    replica = copy.deepcopy(start)
    optimizer = (torch.optim.SGD(replica.parameters(), lr=0.05, momentum=0.9) if name == "sgd"
                 else torch.optim.Adam(replica.parameters(), lr=1e-3))
    for _ in range(4):
        optimizer.zero_grad()
        F.cross_entropy(replica(xs[:256]), ys[:256]).backward()
        optimizer.step()
    rates, smooth, plain = replay_range_test(replica, optimizer, xs, ys, **options)
    got = range_test_after_warmup(start, xs.numpy(), ys.numpy(), name, 4, "cpu", **options)["result"]
    label = f"lr_range_test with {name} ({options})"
    assert len(got["lrs"]) == len(rates), \
        f"{label}: the replay records {len(rates)} steps before stopping, yours {len(got['lrs'])}"
    check_close(got["lrs"], rates, f"{label}: learning rates", rtol=1e-9)
    check_close(got["raw_losses"], plain, f"{label}: minibatch losses against a replay", rtol=1e-4, atol=1e-6,
                hint="one torch.Generator seeded with seed; consecutive slices of one randperm, a new one when used up")
    check_close(got["losses"], smooth, f"{label}: smoothed losses against a replay", rtol=1e-4, atol=1e-6)
    window = np.gradient(np.array(smooth))[10:len(smooth) - 5]
    check_close(got["suggestion"], rates[10 + int(np.argmin(window))], f"{label}: suggestion", rtol=1e-9)
### END HIDDEN TESTS


# %% nbgrader={"grade": true, "grade_id": "test_range_test_restores", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import copy
import nnkit
import torch
import torch.nn.functional as F
from nnkit.data import load_mnist1d

x_all, y_all, _, _ = load_mnist1d()
x_some, y_some = x_all[:1000], y_all[:1000]
net = make_tanh_mlp(2)
replica = copy.deepcopy(net)
sgd = torch.optim.SGD(replica.parameters(), lr=0.05, momentum=0.9)
for _ in range(3):
    sgd.zero_grad()
    F.cross_entropy(replica(torch.from_numpy(x_some[:256])), torch.from_numpy(y_some[:256])).backward()
    sgd.step()
report = range_test_after_warmup(net, x_some, y_some, "sgd", 3, nnkit.pick_device(), lr_min=1e-3, lr_max=5.0,
                                 num_steps=60)
assert len(report["result"]["lrs"]) > 20, "the range test should have run"
for (name, p), q in zip(net.named_parameters(), replica.parameters()):
    assert torch.allclose(p.detach().cpu(), q.detach(), rtol=1e-5, atol=1e-6), \
        f"after lr_range_test the model's {name} is not what it was before the test (largest difference " \
        f"{(p.detach().cpu() - q.detach()).abs().max().item():.3g}): restore the weights from a deep copy"
for (name, q), state in zip(replica.named_parameters(), report["state"]):
    buffer = state.get("momentum_buffer")
    assert buffer is not None and torch.allclose(torch.as_tensor(buffer), sgd.state[q]["momentum_buffer"],
                                                 rtol=1e-5, atol=1e-6), \
        f"after lr_range_test the optimizer's momentum buffer of {name} is not what it was: restore the optimizer's state"
assert report["lr"] == 0.05, f"after lr_range_test the optimizer's learning rate should be back at 0.05, got {report['lr']}"
print("model and optimizer restored")
### BEGIN HIDDEN TESTS
start = make_tanh_mlp(8, hidden=32)
replica = copy.deepcopy(start)
adam = torch.optim.Adam(replica.parameters(), lr=1e-3)
for _ in range(5):
    adam.zero_grad()
    F.cross_entropy(replica(torch.from_numpy(x_some[:256])), torch.from_numpy(y_some[:256])).backward()
    adam.step()
report = range_test_after_warmup(start, x_some, y_some, "adam", 5, "cpu", lr_min=1e-5, lr_max=3.0, num_steps=50,
                                 batch_size=100, seed=9)
for (name, p), q in zip(start.named_parameters(), replica.parameters()):
    assert torch.equal(p.detach(), q.detach()), f"Adam: after lr_range_test the model's {name} has changed"
for (name, q), state in zip(replica.named_parameters(), report["state"]):
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(torch.as_tensor(state[key]), adam.state[q][key]), \
            f"Adam: after lr_range_test the optimizer's {key} of {name} has changed"
    assert float(state["step"]) == 5.0, f"Adam: the step count of {name} should be back at 5, got {state['step']}"
assert report["lr"] == 1e-3, f"Adam: the learning rate should be back at 1e-3, got {report['lr']}"
### END HIDDEN TESTS


# %% [markdown] nbgrader={"grade": false, "grade_id": "range_plot_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The cell below (optional, not graded) runs the range test on a fresh MLP with SGD (momentum 0.9) and plots the raw and
# smoothed losses against the learning rate, with the suggestion.

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "range_plot", "locked": true, "schema_version": 3, "solution": false, "task": false}
probe = make_tanh_mlp(0).to(device)
probe_sgd = torch.optim.SGD(probe.parameters(), lr=0.05, momentum=0.9)
sweep = lr_range_test(probe, probe_sgd, x_train, y_train, lr_min=1e-5, lr_max=10.0, num_steps=150)
fig, ax = plt.subplots(figsize=(6, 3.6))
ax.plot(sweep["lrs"], sweep["raw_losses"], color="lightgray", label="minibatch loss")
ax.plot(sweep["lrs"], sweep["losses"], label="smoothed (bias-corrected EMA)")
if sweep["suggestion"] is not None:
    ax.axvline(sweep["suggestion"], color="black", linestyle="--", label=f"steepest descent: {sweep['suggestion']:.2g}")
ax.set(xscale="log", xlabel="learning rate", ylabel="loss", ylim=(1.5, 4.0))
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()


# %% [markdown] nbgrader={"grade": false, "grade_id": "loguniform_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. Hyperparameter search
#
# ### 4.1 Sampling on a log scale
#
# For a learning rate or a weight decay, what matters is the order of magnitude: going from $10^{-4}$ to $10^{-3}$
# changes a run as much as going from $10^{-2}$ to $10^{-1}$. Sampling such a hyperparameter uniformly between
# $10^{-6}$ and $1$ wastes the search: 99.9 % of the draws land above $10^{-3}$. Sample its logarithm uniformly
# instead: $v = e^{u}$ with $u$ uniform in $[\ln \text{low}, \ln \text{high})$. Then every decade gets the same share of
# the draws, and $P(v \le t) = \ln(t/\text{low}) / \ln(\text{high}/\text{low})$ (the log-uniform, or reciprocal,
# distribution).
#
# **Task.** Write `sample_log_uniform(rng, low, high, size=None)`, with `rng` a `np.random.Generator`: draw $u$ with one
# call `rng.uniform(np.log(low), np.log(high), size)` and return $e^u$ (an array of shape `size`, or a single number
# when `size` is `None`). One call with exactly these arguments, so that the same generator gives the same numbers as
# this formula: the tests compare them.

# %% nbgrader={"grade": false, "grade_id": "loguniform_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sample_log_uniform(rng, low, high, size=None):
    """exp(u) with u = rng.uniform(ln low, ln high, size): log-uniform draws in [low, high)."""
    ### BEGIN SOLUTION
    return np.exp(rng.uniform(np.log(low), np.log(high), size))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_log_uniform", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import numpy as np
from nnkit.testing import check_close

draws = sample_log_uniform(np.random.default_rng(0), 1e-6, 1.0, size=4000)
assert isinstance(draws, np.ndarray) and draws.shape == (4000,), \
    f"sample_log_uniform(..., size=4000) should return an array of shape (4000,), got {type(draws).__name__}"
assert draws.min() >= 1e-6 and draws.max() < 1.0, f"draws should lie in [1e-6, 1): {draws.min()}, {draws.max()}"
per_decade = np.histogram(np.log10(draws), bins=6, range=(-6, 0))[0] / 4000
check_close(per_decade, np.full(6, 1 / 6), "sample_log_uniform: share of the draws in each decade from 1e-6 to 1",
            atol=0.03, hint="sample the logarithm uniformly, then exponentiate")
rng_a = np.random.default_rng(1)
check_close(sample_log_uniform(rng_a, 1e-4, 1e-1, size=5), np.exp(np.random.default_rng(1).uniform(np.log(1e-4),
            np.log(1e-1), 5)), "sample_log_uniform: the same numbers as the formula with the same generator",
            rtol=1e-12, atol=0.0)
print("share of draws per decade:", per_decade)
### BEGIN HIDDEN TESTS
from scipy import stats

for seed, low, high in [(7106, 3e-5, 0.2), (7107, 0.5, 8.0), (7108, 1e-8, 1e-2)]:
    sample = sample_log_uniform(np.random.default_rng(seed), low, high, size=(100, 200))
    assert sample.shape == (100, 200), f"size=(100, 200) should give shape (100, 200), got {np.shape(sample)}"
    test = stats.kstest(sample.ravel(), stats.loguniform(low, high).cdf)
    assert test.pvalue > 1e-3, \
        f"sample_log_uniform({low}, {high}): 20000 draws do not follow the log-uniform distribution " \
        f"(Kolmogorov-Smirnov statistic {test.statistic:.4f}, p = {test.pvalue:.2g})"
    below = [np.mean(sample < q) for q in stats.loguniform(low, high).ppf([0.25, 0.5, 0.75])]
    check_close(below, [0.25, 0.5, 0.75], f"sample_log_uniform({low}, {high}): share of 20000 draws below the "
                "quartiles of the log-uniform distribution", atol=0.015)
    want = np.exp(np.random.default_rng(seed).uniform(np.log(low), np.log(high), (100, 200)))
    check_close(sample, want, f"sample_log_uniform({low}, {high}) against the formula", rtol=1e-12, atol=0.0)
one = sample_log_uniform(np.random.default_rng(3), 1e-3, 1.0)
assert np.ndim(one) == 0 and 1e-3 <= float(one) < 1.0, f"size=None should give a single number, got {one!r}"
### END HIDDEN TESTS


# %% [markdown] nbgrader={"grade": false, "grade_id": "search_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### 4.2 Random search, coarse to fine
#
# Bergstra and Bengio (2012) observed that in most problems only a few hyperparameters matter much. A grid of $N$ runs
# over $d$ hyperparameters tries only $N^{1/d}$ values of each, and when one of them matters little, most of the grid's
# runs repeat the same values of the ones that matter. Random search tries $N$ distinct values of every hyperparameter
# for the same budget. In practice a search goes *coarse to fine*: a first round over wide ranges (with short runs),
# then a round over narrower ranges around the best results, and so on. One more check at the end: if the best value
# of a hyperparameter lies near the edge of its range, the optimum may lie outside it, and the range should be widened.
#
# **Task.** Write `random_search(objective, space, n_trials, rng, rounds=2, top_k=3, edge=0.1)`:
#
# * `space` is a dict `{name: (low, high, scale)}` with `scale` either `"log"` or `"linear"`; `objective(config)` takes
#   a dict `{name: float}` and returns a number, lower is better (a validation loss, say). A value that is NaN or
#   infinite (a run that diverged) ranks as the worst possible.
# * There are `rounds` rounds of `n_trials` trials. In a trial, the configuration is drawn one hyperparameter after the
#   other, in the order of the keys of `space`, from the current round's range: `sample_log_uniform(rng, lo, hi)` for
#   `"log"`, `rng.uniform(lo, hi)` for `"linear"`, each stored as a Python float. Then `objective` is called once on it.
# * Round 0 uses the ranges of `space`. After each round except the last, the range of each hyperparameter for the
#   next round is `[min, max]` of its values among the `top_k` best trials so far (all rounds; ties keep the order in
#   which the trials ran).
# * The best trial is the one with the lowest value (the first of them on a tie).
# * **Edge check**, for each hyperparameter, on the range of `space` (not a refined one): with $t(v) = \ln v$ for
#   `"log"` and $t(v) = v$ for `"linear"`, the best value's position is
#   $p = (t(v_{best}) - t(\text{low})) / (t(\text{high}) - t(\text{low}))$, and it is on the edge if $p <$ `edge` or
#   $p > 1 -$ `edge`.
#
# Return `{"trials": [...], "best": {"config": ..., "value": ...}, "ranges": [...], "on_edge": {...}}`: `trials` lists
# every trial in the order it ran as `{"config": {name: float}, "value": float, "round": r}`; `ranges` gives each round's
# ranges as `{name: [lo, hi]}`; `on_edge` maps each name to a bool. The tests pass an objective of their own, so they
# see every configuration you try.

# %% nbgrader={"grade": false, "grade_id": "search_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def random_search(objective, space, n_trials, rng, rounds=2, top_k=3, edge=0.1):
    """Coarse-to-fine random search: rounds of n_trials, each round's ranges the [min, max] of the top_k trials so far;
    log-scale hyperparameters sampled with sample_log_uniform. Returns {"trials", "best", "ranges", "on_edge"}."""
    ### BEGIN SOLUTION
    def rank(trial):
        return trial["value"] if math.isfinite(trial["value"]) else math.inf

    bounds = {name: (float(low), float(high)) for name, (low, high, _) in space.items()}
    trials, ranges = [], []
    for r in range(rounds):
        ranges.append({name: [lo, hi] for name, (lo, hi) in bounds.items()})
        for _ in range(n_trials):
            config = {}
            for name, (_, _, scale) in space.items():
                lo, hi = bounds[name]
                draw = sample_log_uniform(rng, lo, hi) if scale == "log" else rng.uniform(lo, hi)
                config[name] = float(draw)
            trials.append({"config": config, "value": float(objective(dict(config))), "round": r})
        if r < rounds - 1:
            leaders = sorted(trials, key=rank)[:top_k]
            bounds = {name: (min(t["config"][name] for t in leaders), max(t["config"][name] for t in leaders))
                      for name in space}
    best = min(trials, key=rank)
    on_edge = {}
    for name, (low, high, scale) in space.items():
        t = math.log if scale == "log" else float
        position = (t(best["config"][name]) - t(low)) / (t(high) - t(low))
        on_edge[name] = bool(position < edge or position > 1 - edge)
    return {"trials": trials, "best": {"config": dict(best["config"]), "value": best["value"]}, "ranges": ranges,
            "on_edge": on_edge}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_random_search", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import math
import numpy as np

calls = []


def bowl(config):
    """A validation loss whose best learning rate is 3e-3 and best momentum 0.97, above the range searched."""
    calls.append(dict(config))
    return (math.log10(config["lr"]) - math.log10(3e-3)) ** 2 + 40 * (config["momentum"] - 0.97) ** 2


space = {"lr": (1e-6, 1.0, "log"), "momentum": (0.0, 0.9, "linear")}
found = random_search(bowl, space, n_trials=30, rng=np.random.default_rng(1), rounds=2, top_k=3)
trials = found["trials"]
assert len(calls) == 60 and len(trials) == 60, f"2 rounds of 30 trials: objective called {len(calls)} times, {len(trials)} trials"
assert [t["config"] for t in trials] == calls, "trials should list the configurations in the order they were tried"
assert [t["round"] for t in trials] == [0] * 30 + [1] * 30, "each trial should record its round (0, then 1)"
first = [t["config"]["lr"] for t in trials[:30]]
assert all(1e-6 <= v < 1.0 for v in first), "round 0 should draw lr in [1e-6, 1)"
assert sum(v < 1e-3 for v in first) >= 10, \
    f"lr is on a log scale: about half the round-0 draws should lie below 1e-3, got {sum(v < 1e-3 for v in first)} of 30"
leaders = sorted(trials[:30], key=lambda t: t["value"])[:3]
for name in space:
    lo, hi = min(t["config"][name] for t in leaders), max(t["config"][name] for t in leaders)
    assert found["ranges"][1][name] == [lo, hi], \
        f"round 1's range of {name} should be [min, max] of the 3 best trials of round 0: {[lo, hi]}, got {found['ranges'][1][name]}"
    assert all(lo <= t["config"][name] <= hi for t in trials[30:]), f"round 1 should draw {name} within {[lo, hi]}"
best = min(trials, key=lambda t: t["value"])
assert found["best"]["config"] == best["config"] and found["best"]["value"] == best["value"], \
    f"best should be the trial with the lowest value, {best}, got {found['best']}"
assert found["on_edge"] == {"lr": False, "momentum": True}, \
    f"the best lr ({best['config']['lr']:.2g}) is inside its range on a log scale; the best momentum " \
    f"({best['config']['momentum']:.3f}) lies in the top 10 % of [0, 0.9]: on_edge should be {{'lr': False, 'momentum': True}}, got {found['on_edge']}"
print(f"best after 2 x 30 trials: {found['best']}")
### BEGIN HIDDEN TESTS
seen = []


def picky(config):
    seen.append(dict(config))
    if len(seen) == 1 or config["lr"] > 0.1:
        return float("nan")  # the first run diverged, and so does every run with lr > 0.1
    return (math.log10(config["lr"]) - 1.0) ** 2 + (config["wd"] - 0.5) ** 2 + 0.1 * config["depth"]


space = {"lr": (1e-5, 1.0, "log"), "wd": (1e-6, 1e-1, "log"), "depth": (1.0, 4.0, "linear")}
got = random_search(picky, space, n_trials=12, rng=np.random.default_rng(7109), rounds=3, top_k=4, edge=0.05)
assert len(seen) == 36 and [t["config"] for t in got["trials"]] == seen, "3 rounds of 12 trials, in order"
replay_rng, bounds = np.random.default_rng(7109), {n: (lo, hi) for n, (lo, hi, _) in space.items()}
ranked = []
for r in range(3):
    for i in range(12):
        trial = got["trials"][12 * r + i]
        for n, (lo, hi, scale) in space.items():
            a, b = bounds[n]
            want = np.exp(replay_rng.uniform(np.log(a), np.log(b))) if scale == "log" else replay_rng.uniform(a, b)
            check_close(trial["config"][n], want, f"random_search: trial {12 * r + i}, {n}, against the stated order "
                        "of draws", rtol=1e-12, hint="draw the hyperparameters in the order of space's keys")
        ranked.append(trial)
    order = sorted(ranked, key=lambda t: t["value"] if math.isfinite(t["value"]) else math.inf)[:4]
    bounds = {n: (min(t["config"][n] for t in order), max(t["config"][n] for t in order)) for n in space}
assert any(not math.isfinite(t["value"]) for t in got["trials"][:12]), "the test wants some diverged runs in round 0"
finite = [t for t in got["trials"] if math.isfinite(t["value"])]
want_best = min(finite, key=lambda t: t["value"])
assert got["best"]["config"] == want_best["config"], \
    f"random_search: with NaN values the best trial should be {want_best}, got {got['best']}"
for n, (lo, hi, scale) in space.items():
    warp = math.log if scale == "log" else float
    position = (warp(want_best["config"][n]) - warp(lo)) / (warp(hi) - warp(lo))
    assert got["on_edge"][n] is bool(position < 0.05 or position > 0.95), \
        f"random_search: on_edge['{n}'] with the best value at position {position:.3f} of its range (edge=0.05)"
middle = random_search(lambda c: (math.log10(c["lr"]) + 3) ** 2, {"lr": (1e-5, 1.0, "log")}, 15,
                       np.random.default_rng(7110))
assert middle["on_edge"] == {"lr": False}, \
    f"lr near 1e-3 in [1e-5, 1] is in the middle on a log scale (on a linear scale it would be on the edge): {middle}"
### END HIDDEN TESTS


# %% [markdown] nbgrader={"grade": false, "grade_id": "diagnose_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 5. Reading a run
#
# A few numbers recorded during a run say a lot about what went wrong: the loss before the first step, the training
# and validation curves, and whether the tanh units started out saturated. The provided `record_run` below trains a copy
# of a model with SGD (momentum 0.9) for a few epochs and returns its **history**, a dict:
#
# | key | value |
# | --- | --- |
# | `"train_loss"`, `"val_loss"` | lists, one float per epoch: the mean cross-entropy on the training and validation sets after each epoch |
# | `"train_acc"`, `"val_acc"` | lists, one float per epoch: the accuracies after each epoch |
# | `"initial_loss"` | float: the training-set loss before the first step |
# | `"initial_saturation"` | float: before the first step, the largest fraction of saturated outputs ($\lvert a \rvert > 0.97$) of any tanh layer, on the training set (0.0 without tanh layers) |
# | `"num_classes"` | int: $C$ |
#
# `planted_run(problem, seed, device)` records a run of the tanh MLP on 2000 training examples (8 epochs, learning rate
# 0.1, batches of 100) with one planted problem: `"healthy"` (none), `"big_last_layer"` (the last layer's weights and
# bias multiplied by 30), `"lr_too_high"` (learning rate 1.0), `"lr_too_low"` (learning rate 0.001),
# `"saturated_tanh"` (the hidden layers' weights multiplied by 10), `"shuffled_labels"` (the training labels randomly
# permuted) or `"tiny_model"` (2 hidden units per layer).
#
# **Task.** Write `diagnose(history)`, which returns one of the strings `"lr_too_high"`, `"bad_init"`,
# `"overfitting"`, `"lr_too_low"`, `"underfitting"`, `"healthy"`, by the first of these rules that applies. With
# $L_0$ = `initial_loss`, $C$ = `num_classes`, and first and last meaning the values after the first and the last epoch:
#
# 1. `"lr_too_high"`: a training loss is not finite, or one is greater than $3 L_0$ (the abort rule of section 3.1), or
#    the last training loss is $\ge L_0$ (training went nowhere or backwards).
# 2. `"bad_init"`: $L_0 > \ln C + 1$ (the network starts confidently wrong), or `initial_saturation` $> 0.5$ (most
#    units of a tanh layer start on the flat parts).
# 3. `"overfitting"`: the last training accuracy exceeds the last validation accuracy by more than 0.2, or the training
#    loss fell (last < first) while the validation loss fell by less than half as much:
#    first val − last val $< 0.5\,($first train − last train$)$. (A network that memorizes what does not generalize,
#    such as shuffled labels, shows the second sign long before the first.)
# 4. `"lr_too_low"`: the last training loss is above $0.9\, L_0$ (it fell by less than 10 %).
# 5. `"underfitting"`: the last training loss is above $0.65\, L_0$: the model fits even the training data poorly,
#    and the validation curve follows the training curve.
# 6. `"healthy"` otherwise.
#
# The thresholds fit this chapter's short runs on MNIST-1D; on other problems you would read the same signs against
# baselines of your own. The rules look at the history only: they know nothing of the planted problem. The tests check
# `diagnose` on hand-made histories and on a planted run of each kind.

# %% nbgrader={"grade": false, "grade_id": "runs", "locked": true, "schema_version": 3, "solution": false, "task": false}
def record_run(model, lr, epochs, seed, x, y, x_val, y_val, device, batch_size=100):
    """Train a copy of model with SGD (momentum 0.9) for `epochs` epochs on (x, y), in minibatches of batch_size in
    the order of a torch.randperm per epoch (one generator seeded with seed), and return its history in the format
    diagnose reads. The recording stops after an epoch whose training loss is not finite."""
    net = copy.deepcopy(model).to(device)
    xs, ys, xv, yv = (torch.as_tensor(a).to(device) for a in (x, y, x_val, y_val))

    def loss_and_accuracy(signals, labels):
        with torch.no_grad():
            scores = net(signals)
            return F.cross_entropy(scores, labels).item(), (scores.argmax(1) == labels).float().mean().item()

    def largest_tanh_saturation(signals):
        worst, h = 0.0, signals
        with torch.no_grad():
            for layer in net:
                h = layer(h)
                if isinstance(layer, nn.Tanh):
                    worst = max(worst, (h.abs() > 0.97).float().mean().item())
        return worst

    history = {"train_loss": [], "val_loss": [], "train_acc": [], "val_acc": [],
               "initial_loss": loss_and_accuracy(xs, ys)[0], "initial_saturation": largest_tanh_saturation(xs),
               "num_classes": net[-1].out_features}
    stepper = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    epoch_order = torch.Generator()
    epoch_order.manual_seed(seed)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xs), generator=epoch_order).to(device)
        for first in range(0, len(xs), batch_size):
            rows = perm[first:first + batch_size]
            stepper.zero_grad()
            F.cross_entropy(net(xs[rows]), ys[rows]).backward()
            stepper.step()
        for split, (signals, labels) in (("train", (xs, ys)), ("val", (xv, yv))):
            value, accuracy = loss_and_accuracy(signals, labels)
            history[split + "_loss"].append(value)
            history[split + "_acc"].append(accuracy)
        if not math.isfinite(history["train_loss"][-1]):
            break
    return history


PROBLEMS = ["healthy", "big_last_layer", "lr_too_high", "lr_too_low", "saturated_tanh", "shuffled_labels", "tiny_model"]


def planted_run(problem, seed, device, epochs=8):
    """The history of a run of make_tanh_mlp(seed) on 2000 training examples with one planted problem (or none)."""
    x, y, x_v, y_v = load_mnist1d()
    x, y = x[:2000], y[:2000]
    model, lr = make_tanh_mlp(seed), 0.1
    if problem == "big_last_layer":
        with torch.no_grad():
            model[-1].weight.mul_(30)
            model[-1].bias.mul_(30)
    elif problem == "lr_too_high":
        lr = 1.0
    elif problem == "lr_too_low":
        lr = 0.001
    elif problem == "saturated_tanh":
        with torch.no_grad():
            for layer in model[:-1]:
                if isinstance(layer, nn.Linear):
                    layer.weight.mul_(10)
    elif problem == "shuffled_labels":
        y = y[np.random.default_rng(seed).permutation(len(y))]
    elif problem == "tiny_model":
        model = make_tanh_mlp(seed, hidden=2)
    elif problem != "healthy":
        raise ValueError(f"unknown problem {problem!r}")
    return record_run(model, lr, epochs, seed, x, y, x_v, y_v, device)


# %% nbgrader={"grade": false, "grade_id": "diagnose_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def diagnose(history):
    """Name the problem of a run: "lr_too_high", "bad_init", "overfitting", "lr_too_low", "underfitting" or
    "healthy", by the first rule of the list above that applies."""
    ### BEGIN SOLUTION
    train, val = history["train_loss"], history["val_loss"]
    start = history["initial_loss"]
    if any(not math.isfinite(v) or v > 3 * start for v in train) or train[-1] >= start:
        return "lr_too_high"
    if start > math.log(history["num_classes"]) + 1 or history["initial_saturation"] > 0.5:
        return "bad_init"
    gap = history["train_acc"][-1] - history["val_acc"][-1]
    fell = train[0] - train[-1]
    if gap > 0.2 or (fell > 0 and val[0] - val[-1] < 0.5 * fell):
        return "overfitting"
    if train[-1] > 0.9 * start:
        return "lr_too_low"
    if train[-1] > 0.65 * start:
        return "underfitting"
    return "healthy"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_diagnose_traces", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math


def made(train_loss, val_loss, train_acc, val_acc, initial_loss=2.31, initial_saturation=0.0, num_classes=10):
    return {"train_loss": list(train_loss), "val_loss": list(val_loss), "train_acc": list(train_acc),
            "val_acc": list(val_acc), "initial_loss": initial_loss, "initial_saturation": initial_saturation,
            "num_classes": num_classes}


nan = float("nan")
cases = [
    ("a healthy run", made([1.8, 1.5, 1.3, 1.2], [1.8, 1.6, 1.45, 1.4], [.35, .45, .52, .55], [.33, .4, .45, .47]), "healthy"),
    ("the loss became NaN", made([2.1, nan], [2.2, nan], [.2, .1], [.2, .1]), "lr_too_high"),
    ("a spike above 3 x L0, then back", made([2.0, 7.5, 1.9], [2.0, 7.6, 1.9], [.3, .1, .3], [.3, .1, .3], 2.4), "lr_too_high"),
    ("ended at the initial loss", made([2.2, 2.5, 2.31], [2.2, 2.5, 2.3], [.2, .2, .2], [.2, .2, .2]), "lr_too_high"),
    ("started at 9 then trained", made([3.0, 2.0, 1.5, 1.3], [3.2, 2.2, 1.7, 1.5], [.3, .4, .5, .5], [.3, .4, .45, .47], 9.0), "bad_init"),
    ("started at 9 and blew up", made([5.0, nan], [5.2, nan], [.2, .1], [.2, .1], 9.0), "lr_too_high"),
    ("saturated tanh at the start", made([1.8, 1.5, 1.1, 0.9], [2.0, 1.9, 1.9, 2.0], [.3, .4, .6, .7], [.2, .25, .26, .26],
                                         2.4, 0.7), "bad_init"),
    ("a widening accuracy gap", made([1.5, 1.0, 0.6, 0.4], [1.6, 1.4, 1.3, 1.25], [.5, .7, .85, .9], [.45, .55, .6, .62]), "overfitting"),
    ("validation loss rising while training loss falls", made([2.29, 2.27, 2.25, 2.24], [2.31, 2.32, 2.33, 2.34],
                                                               [.13, .15, .17, .18], [.1, .1, .09, .1]), "overfitting"),
    ("a slow, steady fall", made([2.3, 2.28, 2.26, 2.24], [2.3, 2.28, 2.26, 2.24], [.1, .12, .14, .15], [.1, .12, .14, .15]), "lr_too_low"),
    ("a high plateau", made([2.1, 1.9, 1.8, 1.75], [2.1, 1.9, 1.8, 1.76], [.2, .25, .28, .29], [.2, .25, .27, .28], 2.4), "underfitting"),
    ("3 classes, starting at 2.3", made([1.0, 0.8, 0.6], [1.0, 0.85, 0.7], [.5, .6, .7], [.5, .58, .65], 2.3, 0.0, 3), "bad_init"),
    ("3 classes, healthy", made([0.9, 0.7, 0.5], [0.9, 0.75, 0.6], [.5, .6, .7], [.5, .58, .65], 1.1, 0.0, 3), "healthy"),
]
for what, history, want in cases:
    got = diagnose(history)
    assert got == want, f"diagnose: {what} should be {want!r}, got {got!r} (history {history})"
print("diagnose: all hand-made histories named correctly")
### BEGIN HIDDEN TESTS
import numpy as np


def rule_book(h):
    tr, vd, begin = np.array(h["train_loss"]), np.array(h["val_loss"]), h["initial_loss"]
    if (~np.isfinite(tr)).any() or (tr > 3 * begin).any() or tr[-1] >= begin:
        return "lr_too_high"
    if begin > np.log(h["num_classes"]) + 1 or h["initial_saturation"] > 0.5:
        return "bad_init"
    if h["train_acc"][-1] - h["val_acc"][-1] > 0.2 or (tr[-1] < tr[0] and vd[0] - vd[-1] < 0.5 * (tr[0] - tr[-1])):
        return "overfitting"
    if tr[-1] > 0.9 * begin:
        return "lr_too_low"
    return "underfitting" if tr[-1] > 0.65 * begin else "healthy"


rng_t = np.random.default_rng(7111)
counts = {}
for trial in range(300):
    epochs = int(rng_t.integers(1, 10))
    classes = int(rng_t.choice([2, 5, 10, 100]))
    l0 = float(np.log(classes) * rng_t.uniform(0.9, 1.6) + rng_t.choice([0.0, 0.0, 2.0]))
    decay = rng_t.uniform(-0.05, 0.5)
    tl = l0 * np.exp(-decay * np.arange(1, epochs + 1)) * rng_t.uniform(0.95, 1.05, size=epochs)
    vl = tl * rng_t.uniform(1.0, 1.3) + rng_t.uniform(-0.05, 0.3) * np.arange(epochs) / max(epochs - 1, 1)
    if trial % 10 == 0:
        tl[int(rng_t.integers(epochs))] = rng_t.choice([np.nan, np.inf, 4 * l0])
    ta = np.clip(1 - tl / (l0 * 1.2), 0, 1)
    va = np.clip(ta - rng_t.uniform(0, 0.3), 0, 1)
    h = {"train_loss": [float(v) for v in tl], "val_loss": [float(v) for v in vl], "train_acc": [float(v) for v in ta],
         "val_acc": [float(v) for v in va], "initial_loss": l0, "initial_saturation": float(rng_t.uniform(0, 0.7)),
         "num_classes": classes}
    want = rule_book(h)
    counts[want] = counts.get(want, 0) + 1
    assert diagnose(h) == want, f"diagnose should name this history {want!r}, got {diagnose(h)!r}: {h}"
assert len(counts) == 6, counts  # every rule was exercised
### END HIDDEN TESTS


# %% nbgrader={"grade": true, "grade_id": "test_diagnose_planted", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
EXPECTED = {"healthy": "healthy", "big_last_layer": "bad_init", "lr_too_high": "lr_too_high", "lr_too_low": "lr_too_low",
            "saturated_tanh": "bad_init", "shuffled_labels": "overfitting", "tiny_model": "underfitting"}
wrong = []
for problem in PROBLEMS:
    history = planted_run(problem, seed=0, device="cpu")
    named = diagnose(history)
    print(f"{problem:16s} -> {named}")
    if named != EXPECTED[problem]:
        wrong.append(f"{problem} (planted) was named {named!r}, expected {EXPECTED[problem]!r}")
assert not wrong, "diagnose on the planted runs of seed 0: " + "; ".join(wrong)
### BEGIN HIDDEN TESTS
for problem in PROBLEMS:
    named = diagnose(planted_run(problem, seed=1, device="cpu"))
    assert named == EXPECTED[problem], f"diagnose on the planted run {problem!r} of seed 1: {named!r}, expected {EXPECTED[problem]!r}"
### END HIDDEN TESTS


# %% [markdown] nbgrader={"grade": false, "grade_id": "refs", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## References
#
# * L. N. Smith. *Cyclical learning rates for training neural networks.* WACV 2017 (the learning-rate range test).
# * J. Bergstra, Y. Bengio. *Random search for hyper-parameter optimization.* JMLR 13, 2012.
# * A. Karpathy. *CS231n: Convolutional neural networks for visual recognition*, course notes, "Neural networks part 3:
#   learning and evaluation" (sanity checks, babysitting the learning process, update-to-weight ratios).
# * A. Karpathy. *A recipe for training neural networks*, 2019 (overfit one batch, verify the loss at initialization).
# * C. Zhang, S. Bengio, M. Hardt, B. Recht, O. Vinyals. *Understanding deep learning requires rethinking
#   generalization.* ICLR 2017 (networks memorize randomly permuted labels).
# * S. Greydanus. *Scaling down deep learning* (MNIST-1D), 2020.
# * PyTorch documentation: `torch.nn.Module.register_forward_hook`, `torch.Tensor.register_hook`, `torch.optim`.
