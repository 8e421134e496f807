"""The helper package: its checks fail loudly and helpfully, its gradients are right, its
data are reproducible and offline, and device choice follows the documented order."""

import numpy as np
import pytest
import torch

from nnkit import pick_device
from nnkit.data import load_digits, load_mnist1d, make_spirals
from nnkit.gradcheck import grad_check, numerical_grad, numerical_grad_array, rel_error
from nnkit.testing import check_array, check_close, check_grad, check_raises, check_scalar


def fails_with(fragment, fn, *args, **kwargs):
    with pytest.raises(AssertionError) as info:
        fn(*args, **kwargs)
    assert fragment in str(info.value), str(info.value)
    return str(info.value)


def test_check_array_accepts_a_correct_array():
    check_array(np.array([1.0, 2.0]), [1.0, 2.0 + 1e-9], "out")


@pytest.mark.parametrize("got, fragment", [
    ([1.0, 2.0], "expected a numpy.ndarray, got list"),
    (torch.tensor([1.0, 2.0]), "got torch.Tensor"),
    (np.array([[1.0, 2.0]]), "expected shape (2,), got (1, 2)"),
    (np.array([1, 2]), "floating-point"),
    (np.array([1.0, 2.0], dtype=np.float32), "precision lost"),
    (np.array([1.0, np.nan]), "NaN or inf"),
    (np.array([1.0, 2.5]), "largest difference 0.5 at index (1,)"),
])
def test_check_array_says_what_is_wrong(got, fragment):
    message = fails_with(fragment, check_array, got, np.array([1.0, 2.0]), "affine out", hint="look at b")
    assert message.startswith("affine out: ") and "Hint: look at b" in message


def test_check_scalar():
    check_scalar(2.0, 2.0, "loss")
    check_scalar(np.float64(2.0), 2.0, "loss")
    check_scalar(np.array(2.0), 2.0, "loss")
    fails_with("got an array of shape (2,)", check_scalar, np.ones(2), 2.0, "loss")
    fails_with("expected a real number, got bool", check_scalar, True, 1.0, "loss")
    fails_with("got nan", check_scalar, float("nan"), 1.0, "loss")
    fails_with("expected 2", check_scalar, 2.1, 2.0, "loss")


def test_failure_messages_show_values_that_differ_in_the_last_digit():
    """With NumPy printing 4 digits, or rounding to 6, values one rounding error apart would
    look equal in the message."""
    saved = np.get_printoptions()
    np.set_printoptions(precision=4)
    try:
        message = fails_with("values differ", check_array, np.array([1.0, 2.0 + 1e-12]), np.array([1.0, 2.0]),
                             "x", rtol=0, atol=0)
        assert "got 2.000000000001, expected 2.0" in message and "1.000088900582341e-12" in message, message
        fails_with("got 0.30000000000000004, expected 0.3", check_scalar, 0.1 + 0.2, 0.3, "s",
                             rtol=0, atol=0)
        analytic = np.array([1.0, 1.0 + 1e-6])
        fails_with("analytic 1.000001, numerical 1.0", check_grad, analytic, np.ones(2), "g", tol=1e-9)
    finally:
        np.set_printoptions(**saved)


def test_import_nnkit_gives_the_data_module_without_importing_torch():
    """The notebooks call nnkit.data.load_mnist1d() after a plain `import nnkit`."""
    import subprocess
    import sys

    code = "import sys, nnkit; nnkit.data.load_mnist1d; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_check_close_refuses_broadcasting():
    check_close(np.float64(3.0), 3.0, "x")
    fails_with("expected shape (3,), got (1,)", check_close, np.ones(1), np.ones(3), "x")


def test_numerical_gradient_matches_calculus_and_restores_input():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    before = x.copy()
    grad = numerical_grad(lambda z: np.sum(z ** 3), x)
    assert rel_error(grad, 3 * before ** 2) < 1e-7
    assert np.array_equal(x, before)
    dout = rng.normal(size=(3, 4))
    assert rel_error(numerical_grad_array(np.tanh, x, dout), dout * (1 - np.tanh(before) ** 2)) < 1e-8
    assert grad_check(lambda z: np.sum(z ** 3), x, 3 * before ** 2, n_checks=5) < 1e-8
    with pytest.raises(TypeError, match="float64"):
        numerical_grad(np.sum, x.astype(np.float32))


def test_check_grad_catches_a_wrong_gradient():
    x = np.linspace(-1, 1, 6)
    numeric = numerical_grad(lambda z: np.sum(np.sin(z)), x.copy())
    check_grad(np.cos(x), numeric, "dx")
    fails_with("relative error", check_grad, np.cos(x) * 1.01, numeric, "dx")
    fails_with("has shape (5,)", check_grad, np.cos(x[:5]), numeric, "dx")


def test_rel_error_is_zero_for_equal_zero_arrays_and_rejects_shape_mismatch():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(ValueError):
        rel_error(np.zeros(3), np.zeros(4))


def test_mnist1d_is_generated_locally_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("NNKIT_CACHE", str(tmp_path))
    first = load_mnist1d(num_samples=500, seed=1)
    assert [a.shape for a in first] == [(400, 40), (400,), (100, 40), (100,)]
    assert set(np.unique(first[1])) <= set(range(10))
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1
    second = load_mnist1d(num_samples=500, seed=1)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_digits_and_spirals():
    x_train, y_train, x_test, y_test = load_digits()
    assert x_train.shape[1:] == (8, 8) and len(x_train) + len(x_test) == 1797
    x, y = make_spirals(n_per_class=50, n_classes=3)
    assert x.shape == (150, 2) and np.bincount(y).tolist() == [50, 50, 50]
    assert np.array_equal(make_spirals(seed=3)[0], make_spirals(seed=3)[0])


def test_pick_device_order(monkeypatch):
    monkeypatch.setenv("NNKIT_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    monkeypatch.delenv("NNKIT_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert pick_device().type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            pick_device("cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_step_runs_on_the_gpu():
    device = pick_device()
    assert device.type == "cuda"
    model = torch.nn.Linear(40, 10).to(device)
    x, y = torch.randn(64, 40, device=device), torch.randint(0, 10, (64,), device=device)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert model.weight.grad.device.type == "cuda" and torch.isfinite(loss)


def test_check_raises_tells_a_stub_another_error_and_a_return_apart():
    def raises(exc):
        def call():
            raise exc
        return call
    check_raises(raises(ValueError("bad layout")), ValueError, "f('x')")
    fails_with("f('x'): is not implemented yet", check_raises, raises(NotImplementedError()), ValueError, "f('x')")
    fails_with("should raise ValueError, got KeyError: 'x'", check_raises, raises(KeyError("x")), ValueError, "f")
    fails_with("should raise ValueError, but it returned", check_raises, lambda: 3, ValueError, "f")
