"""Independent oracles and seeded inputs for the tests of the reference solutions.

The oracles are independent of the functions under test: gradients come from PyTorch autograd
or from nnkit's centred differences, statistics from their textbook definitions. Every input
generator takes a seed or a ``numpy.random.Generator`` so a failing case can be replayed exactly.
"""

import math

import numpy as np
import torch

from nnkit.gradcheck import numerical_grad, rel_error


def torch_autograd(fn, *inputs, dout=None):
    """Output and input gradients of ``fn`` by PyTorch autograd, in float64.

    Each NumPy input becomes a float64 leaf tensor and ``fn`` receives them positionally;
    anything that needs no gradient (targets, labels, fixed weights) is closed over by ``fn``.
    ``dout`` is the upstream gradient, the same shape as the output; leave it out when ``fn``
    returns a scalar loss. Returns ``(output, grads)`` as NumPy: the output (0-d for a scalar)
    and a tuple of gradients, one for each input in order.
    """
    leaves = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in inputs]
    out = fn(*leaves)
    if dout is None:
        out.backward()
    else:
        out.backward(torch.tensor(np.asarray(dout, dtype=np.float64)))
    # An input the output does not depend on has a zero gradient, which autograd leaves as None.
    grads = tuple(np.zeros(t.shape) if t.grad is None else t.grad.numpy() for t in leaves)
    return out.detach().numpy(), grads


def torch_autograd_named(fn, inputs, dout=None):
    """``torch_autograd`` for named inputs: ``fn`` receives a dict of tensors with the keys of
    the dict ``inputs``, and the gradients come back as a dict with the same keys."""
    names = list(inputs)
    out, grads = torch_autograd(lambda *ts: fn(dict(zip(names, ts))), *inputs.values(), dout=dout)
    return out, dict(zip(names, grads))


def gradient_errors(loss_and_grads, params):
    """Relative error of each analytic gradient against centred differences.

    ``loss_and_grads(params)`` returns ``(loss, grads)`` with ``grads`` keyed like the dict
    ``params``, whose float64 arrays are perturbed in place while probing and restored.
    """
    _, grads = loss_and_grads(params)
    return {name: rel_error(grads[name], numerical_grad(lambda _: loss_and_grads(params)[0], params[name]))
            for name in params}


def random_shape(rng, max_dims=3, max_size=6):
    """A shape of 1 to ``max_dims`` axes, each of length 1 to ``max_size - 1``."""
    return tuple(int(v) for v in rng.integers(1, max_size, size=int(rng.integers(1, max_dims + 1))))


def normals(rng, *shapes):
    """One standard normal array for each shape, drawn in order from ``rng``."""
    return tuple(rng.normal(size=shape) for shape in shapes)


def normal_with_zeros(shape, seed, scale=3.0, zeros=0.2):
    """An input of normal values times ``scale`` with about a fraction ``zeros`` of them exactly
    0, and a standard normal upstream gradient of the same shape: ``(x, dout)``.

    A continuous draw never lands on a kink, so the zeros are planted: that is where piecewise
    functions (ReLU and its kin) must follow PyTorch's subgradient convention.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * scale
    x[rng.random(shape) < zeros] = 0.0
    return x, rng.normal(size=shape)


def data_matrix(n, d, seed, constant_column=False, new_rows=7):
    """An ``(n, d)`` data matrix with correlated columns of different scales and offsets, and
    ``new_rows`` further rows (never fitted on) to transform.

    With ``constant_column`` the last column is 3.25 everywhere: zero variance, and a mean
    away from 0, so scaling must not divide by 0 nor rely on the column being centred.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * rng.uniform(0.5, 5.0) + rng.uniform(-20, 20, size=d)
    if constant_column:
        x[:, -1] = 3.25
    return x, rng.normal(size=(new_rows, d)) * 4.0


def pooled(make, size, at_least=60000):
    """``make(i)`` for i = 0, 1, ..., flattened and concatenated until there are at least
    ``at_least`` values: enough draws of a small shape for tight statistics."""
    reps = max(1, math.ceil(at_least / size))
    return np.concatenate([np.asarray(make(i), dtype=np.float64).ravel() for i in range(reps)])


def kurtosis(w):
    """Sample kurtosis E[(w - mean)^4] / var^2: 3 for a normal distribution, 1.8 for a uniform one."""
    w = w - w.mean()
    return float(np.mean(w ** 4) / np.mean(w ** 2) ** 2)


def sgd_epoch_losses(model, optimizer, x, y, *, epochs, batch_size, seed):
    """The course's training recipe written out with torch, as the oracle of the train functions:
    each epoch visits the examples in the order of ``torch.randperm`` drawn from one CPU
    generator seeded with ``seed``, takes one optimizer step on the mean cross-entropy of each
    minibatch, and reports the example-weighted mean of the minibatch losses."""
    return scheduled_epoch_losses(model, optimizer, None, x, y, epochs=epochs, batch_size=batch_size, seed=seed)[0]


def optimizer_trajectory(optimizer_class, kwargs, w0, grads, lrs=None):
    """A ``torch.optim`` class stepped on one float64 parameter with the given gradients, in order:
    the parameter after each step, as NumPy arrays. ``lrs``, if given, sets the learning rate of
    each step in ``param_groups`` before it is taken (the way a scheduler changes it)."""
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


def scheduler_lrs(make_scheduler, base_lr, steps):
    """The learning rate of a ``torch.optim.lr_scheduler`` after 0, 1, ..., ``steps`` calls of
    ``scheduler.step()``, each after an ``optimizer.step()`` (the order PyTorch expects).
    ``make_scheduler(optimizer)`` builds the scheduler on an SGD optimizer with ``lr=base_lr``."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(steps + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def scheduled_epoch_losses(model, optimizer, scheduler, x, y, *, epochs, batch_size, seed):
    """``sgd_epoch_losses`` with a scheduler (or None) stepped once after each epoch's optimizer
    steps: ``(losses, lrs)``, with the learning rate in effect during each epoch."""
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    lrs, losses = [], []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        order, total = torch.randperm(len(x), generator=generator), 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
        if scheduler is not None:
            scheduler.step()
    return losses, lrs
