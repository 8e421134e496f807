"""The chapter 5 reference solutions against torch.optim (every update rule stepped on the same seeded
gradients for many steps, several configs each, with weight decay, nesterov, amsgrad=False, gradients of
scale 1e-4 where epsilon's place shows, and a learning rate that changes every step), torch.optim.lr_scheduler,
torch.nn.utils.clip_grad_norm_, a replay of the training recipe, and the step counts on the quadratic.
"""

import copy
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from oracles import optimizer_trajectory, scheduled_epoch_losses, scheduler_lrs

STEPS = 30


@pytest.fixture(scope="module")
def ref(reference):
    return reference("ch5_optimizers")


def run_rule(update, config, w0, grads, lrs=None):
    """The rule from an empty state; asserts that no argument is changed in place."""
    w, state, path = w0.copy(), {}, []
    for k, g in enumerate(grads):
        cfg = dict(config) if lrs is None else {**config, "lr": float(lrs[k])}
        kept = (w.copy(), g.copy(), copy.deepcopy(state), copy.deepcopy(cfg))
        new_w, new_state = update(w, g, state, cfg)
        np.testing.assert_array_equal(w, kept[0])
        np.testing.assert_array_equal(g, kept[1])
        assert state.keys() == kept[2].keys()
        for key in state:
            np.testing.assert_array_equal(state[key], kept[2][key])
        assert cfg == kept[3]
        assert new_w is not w
        path.append(new_w)
        w, state = new_w, new_state
    return path


RULES = [
    ("sgd_update", torch.optim.SGD, {"lr": 1e-2}, [{"lr": 0.1}, {"lr": 0.05, "weight_decay": 0.2}, {}]),
    ("momentum_update", torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9},
     [{"lr": 0.05}, {"lr": 0.02, "momentum": 0.5, "dampening": 0.4}, {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.1}, {}]),
    ("nesterov_update", torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9, "nesterov": True},
     [{"lr": 0.05}, {"lr": 0.1, "momentum": 0.6, "weight_decay": 0.05}, {}]),
    ("adagrad_update", torch.optim.Adagrad, {"lr": 1e-2}, [{"lr": 0.3}, {"lr": 0.1, "eps": 1e-6, "weight_decay": 0.1}, {}]),
    ("rmsprop_update", torch.optim.RMSprop, {"lr": 1e-2},
     [{"lr": 0.003}, {"lr": 0.01, "alpha": 0.9, "eps": 1e-6}, {"lr": 0.02, "weight_decay": 0.1}, {}]),
    ("adadelta_update", torch.optim.Adadelta, {"lr": 1.0}, [{}, {"lr": 0.3, "rho": 0.95, "eps": 1e-7},
                                                          {"rho": 0.8, "weight_decay": 0.05}]),
    ("adam_update", torch.optim.Adam, {"lr": 1e-3, "amsgrad": False},
     [{}, {"lr": 0.01, "betas": (0.8, 0.99)}, {"lr": 0.003, "eps": 1e-6, "weight_decay": 0.1}, {"lr": 0.05, "betas": (0.5, 0.9)}]),
    ("adamw_update", torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 1e-2, "amsgrad": False},
     [{}, {"lr": 0.01, "weight_decay": 0.5}, {"lr": 0.02, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.0}]),
]
CASES = [(name, cls, defaults, config) for name, cls, defaults, configs in RULES for config in configs]


@pytest.mark.parametrize("scale", [1.0, 1e-4])
@pytest.mark.parametrize("changing_lr", [False, True])
@pytest.mark.parametrize("name, cls, defaults, config", CASES, ids=lambda v: str(v) if isinstance(v, (str, dict)) else "")
def test_rule_matches_torch_optim(ref, name, cls, defaults, config, scale, changing_lr):
    rng = np.random.default_rng(sum(map(ord, name + str(config))) + int(changing_lr) + int(scale == 1.0) * 7)
    w0 = rng.normal(size=(3, 4)) * 2
    grads = [rng.normal(size=w0.shape) * scale for _ in range(STEPS)]
    lrs = list(rng.uniform(0.2, 2.0, size=STEPS) * config.get("lr", defaults["lr"])) if changing_lr else None
    got = run_rule(ref[name], config, w0, grads, lrs)
    want = optimizer_trajectory(cls, {**defaults, **config}, w0, grads, lrs)
    for k in range(STEPS):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-13, err_msg=f"{name} {config} step {k + 1}")


def test_adam_resumes_from_torch_state(ref):
    rng = np.random.default_rng(55)
    w0, grads = rng.normal(size=5), [rng.normal(size=5) * 1e-3 for _ in range(12)]
    p = torch.tensor(w0, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.02, betas=(0.8, 0.99))
    for g in grads[:5]:
        p.grad = torch.tensor(g)
        opt.step()
    s = opt.state[p]
    state = {"t": int(s["step"]), "m": s["exp_avg"].numpy().copy(), "v": s["exp_avg_sq"].numpy().copy()}
    w = p.detach().numpy().copy()
    for g in grads[5:]:
        p.grad = torch.tensor(g)
        opt.step()
        w, state = ref["adam_update"](w, g, state, {"lr": 0.02, "betas": (0.8, 0.99)})
        np.testing.assert_allclose(w, p.detach().numpy(), rtol=1e-10, atol=1e-13)
    assert state["t"] == 12


def test_momentum_with_lr_inside_the_velocity_differs_under_a_schedule(ref):
    """The test above would catch the other form: the two forms really differ when lr changes."""
    rng = np.random.default_rng(56)
    w0, grads = rng.normal(size=3), [rng.normal(size=3) for _ in range(10)]
    lrs = np.linspace(0.1, 0.01, 10)
    w_torch_form = run_rule(ref["momentum_update"], {"momentum": 0.9}, w0, grads, lrs)[-1]
    w, v = w0.copy(), np.zeros(3)
    for g, lr in zip(grads, lrs):
        v = 0.9 * v + lr * g
        w = w - v
    assert np.abs(w - w_torch_form).max() > 1e-3


@pytest.mark.parametrize("base_lr, step_size, gamma", [(0.3, 4, 0.7), (1.0, 1, 0.9), (0.05, 7, 0.1)])
def test_step_lr(ref, base_lr, step_size, gamma):
    want = scheduler_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=step_size, gamma=gamma), base_lr, 50)
    got = [ref["step_lr"](k, base_lr, step_size, gamma) for k in range(51)]
    assert all(isinstance(v, float) for v in got)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("base_lr, gamma", [(0.3, 0.95), (1.0, 0.5), (0.01, 0.999)])
def test_exponential_lr(ref, base_lr, gamma):
    want = scheduler_lrs(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=gamma), base_lr, 50)
    np.testing.assert_allclose([ref["exponential_lr"](k, base_lr, gamma) for k in range(51)], want, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("base_lr, total, min_lr", [(0.1, 10, 0.0), (0.5, 37, 0.01), (1.0, 1, 0.3), (0.2, 100, 0.0)])
def test_cosine_lr(ref, base_lr, total, min_lr):
    want = scheduler_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=min_lr),
                         base_lr, total)
    np.testing.assert_allclose([ref["cosine_lr"](k, base_lr, total, min_lr) for k in range(total + 1)], want,
                               rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("base_lr, warmup, total, start_factor, min_lr",
                         [(0.3, 4, 13, 0.1, 0.01), (1.0, 1, 5, 0.5, 0.0), (0.05, 10, 50, 0.01, 0.001), (0.1, 3, 4, 0.2, 0.0)])
def test_warmup_cosine_lr(ref, base_lr, warmup, total, start_factor, min_lr):
    def make(o):
        return torch.optim.lr_scheduler.SequentialLR(
            o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=start_factor, total_iters=warmup),
                torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total - warmup, eta_min=min_lr)], milestones=[warmup])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = scheduler_lrs(make, base_lr, total)
    got = [ref["warmup_cosine_lr"](k, base_lr, warmup, total, start_factor, min_lr) for k in range(total + 1)]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("ratio", [0.3, 0.999, 1.0, 1.0 + 1e-7, 2.0, 1e-3, 1.0 - 1e-7])
def test_clip_grad_norm(ref, ratio):
    rng = np.random.default_rng(int(ratio * 1000))
    shapes = [(3,), (2, 4), (1,), (2, 2, 2)]
    grads = [rng.normal(size=s) * 10 ** rng.uniform(-3, 1) for s in shapes]
    total = math.sqrt(sum((g ** 2).sum() for g in grads))
    params = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g)
    want_norm = torch.nn.utils.clip_grad_norm_(params, total * ratio).item()
    kept = [g.copy() for g in grads]
    got, norm = ref["clip_grad_norm"](grads, total * ratio)
    assert isinstance(norm, float) and isinstance(got, list)
    assert norm == pytest.approx(want_norm, rel=1e-12)
    for g, p, k in zip(got, params, kept):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12, atol=1e-15)
    for g, k in zip(grads, kept):
        np.testing.assert_array_equal(g, k)


def test_quadratic_configs_and_race(ref):
    configs = ref["quadratic_configs"](1.0, 50.0)
    assert configs["sgd"]["lr"] == pytest.approx(2 / 51)
    # Polyak's parameters make the largest root of z^2 - (1 + b - a lam) z + b equal (sqrt k - 1)/(sqrt k + 1).
    a, b = configs["momentum"]["lr"], configs["momentum"]["momentum"]
    worst = max(max(abs(np.roots([1, -(1 + b - a * lam), b]))) for lam in np.linspace(1, 50, 201))
    assert worst == pytest.approx((math.sqrt(50) - 1) / (math.sqrt(50) + 1), rel=1e-6)
    steps = {name: ref["steps_to_tol"](ref["run_rule"](ref[rule], config, 400), 1e-4)
             for name, rule, config in [("sgd", "sgd_update", configs["sgd"]),
                                        ("momentum", "momentum_update", configs["momentum"]),
                                        ("adam", "adam_update", {"lr": 0.1})]}
    assert steps == {"sgd": 231, "momentum": 44, "adam": 136}, steps


def make_oracle_model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@pytest.mark.parametrize("name, lr, schedule, seed, batch_size", [
    ("momentum", 0.05, "cosine", 1, 100), ("adamw", 3e-3, "step", 2, 128), ("nesterov", 0.05, None, 3, 200),
    ("rmsprop", 1e-3, "cosine", 4, 200), ("adam", 1e-3, "step", 0, 100)])
def test_train_against_a_replay(ref, name, lr, schedule, seed, batch_size):
    from nnkit.data import load_mnist1d

    x, y, x_test, y_test = (torch.from_numpy(a) for a in load_mnist1d())
    epochs = 3
    model = make_oracle_model(seed)
    cls, kwargs = {"sgd": (torch.optim.SGD, {}), "momentum": (torch.optim.SGD, {"momentum": 0.9}),
                   "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
                   "rmsprop": (torch.optim.RMSprop, {}), "adam": (torch.optim.Adam, {}),
                   "adamw": (torch.optim.AdamW, {})}[name]
    optimizer = cls(model.parameters(), lr=lr, **kwargs)
    scheduler = {None: None, "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs),
                 "step": lambda: torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)}[schedule]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the oracle itself steps in PyTorch's order: no warning
        losses, lrs = scheduled_epoch_losses(model, optimizer, scheduler() if scheduler else None, x, y,
                                             epochs=epochs, batch_size=batch_size, seed=seed)
    with torch.no_grad():
        want_acc = (model(x_test).argmax(1) == y_test).double().mean().item()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reference steps the scheduler after the optimizer
        got = ref["train"](name, lr, epochs, seed, "cpu", schedule=schedule, batch_size=batch_size)
    assert all(isinstance(v, float) for v in got["loss_history"] + got["lr_history"])
    np.testing.assert_allclose(got["lr_history"], lrs, rtol=1e-12)
    np.testing.assert_allclose(got["loss_history"], losses, rtol=1e-5)
    assert abs(got["test_accuracy"] - want_acc) < 1e-6
    if schedule == "cosine":
        assert got["lr_history"][0] == lr
