"""Assertions for exercise test cells.

Every check raises ``AssertionError`` with a message that says which output is wrong,
how far off it is and, where given, a hint. Test cells use only these checks (or plain
asserts with a message) and reach student code only by calling the student's functions
with arrays and numbers, so the grader can run the same cells outside the student's kernel.
"""

import numbers

import numpy as np

from .gradcheck import rel_error


def _fail(name: str, problem: str, hint: str | None) -> None:
    message = f"{name}: {problem}"
    if hint:
        message += f"\nHint: {hint}"
    raise AssertionError(message)


def _exact(value) -> str:
    """A number as Python writes it back (all the digits it needs): two values that differ
    never print alike, whatever NumPy's print options are."""
    return repr(float(value)) if np.isrealobj(value) else repr(complex(value))


def _describe(value) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__


def check_array(got, expected, name: str, *, rtol: float = 1e-6, atol: float = 1e-8,
                dtype=None, hint: str | None = None) -> None:
    """Check that ``got`` is a NumPy array of ``expected``'s shape, a floating (or the given)
    dtype, finite, and close to ``expected`` elementwise."""
    expected = np.asarray(expected)
    if type(got) is not np.ndarray:
        _fail(name, f"expected a numpy.ndarray, got {_describe(got)}", hint or
              "return a NumPy array (np.asarray(...)), not a list, tuple, tensor or number")
    if got.shape != expected.shape:
        _fail(name, f"expected shape {expected.shape}, got {got.shape}", hint)
    want = np.dtype(dtype) if dtype is not None else None
    if want is not None and got.dtype != want:
        _fail(name, f"expected dtype {want}, got {got.dtype}", hint)
    if want is None and np.issubdtype(expected.dtype, np.floating):
        if not np.issubdtype(got.dtype, np.floating):
            _fail(name, f"expected a floating-point array, got dtype {got.dtype}", hint or
                  "integer arithmetic truncates: make sure the computation stays in float")
        if got.dtype.itemsize < expected.dtype.itemsize:
            _fail(name, f"expected dtype {expected.dtype}, got {got.dtype} (precision lost)", hint or
                  "keep the input's dtype: do not cast to float32 or float16")
    if np.issubdtype(got.dtype, np.number):
        bad = ~np.isfinite(got)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            _fail(name, f"{int(bad.sum())} of {got.size} entries are NaN or inf (first at index {where})",
                  hint or "look for exp of a large number, log of 0 or a division by 0")
    if got.size and not np.allclose(got, expected, rtol=rtol, atol=atol):
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        where = np.unravel_index(int(np.argmax(diff)), diff.shape)
        where_text = tuple(int(i) for i in where)
        _fail(name, f"values differ: largest difference {_exact(diff[where])} at index {where_text} "
                    f"(got {_exact(got[where])}, expected {_exact(expected[where])}); "
                    f"{int((diff > atol + rtol * np.abs(expected)).sum())} of {got.size} entries are off "
                    f"(rtol={rtol:g}, atol={atol:g})", hint)


def check_scalar(got, expected: float, name: str, *, rtol: float = 1e-6, atol: float = 1e-8,
                 hint: str | None = None) -> None:
    """Check that ``got`` is a real number (Python or NumPy scalar, or a 0-d array) close
    to ``expected``."""
    if isinstance(got, np.ndarray):
        if got.ndim != 0:
            _fail(name, f"expected a single number, got an array of shape {got.shape}",
                  hint or "reduce to a scalar (sum or mean) before returning")
        got = got[()]
    if isinstance(got, (bool, np.bool_)) or not isinstance(got, numbers.Real):
        _fail(name, f"expected a real number, got {_describe(got)}", hint)
    value = float(got)
    if not np.isfinite(value):
        _fail(name, f"got {value}", hint or "look for exp of a large number, log of 0 or a division by 0")
    if not np.isclose(value, expected, rtol=rtol, atol=atol):
        _fail(name, f"got {_exact(value)}, expected {_exact(expected)} "
                    f"(difference {_exact(abs(value - expected))}; rtol={rtol:g}, atol={atol:g})", hint)


def check_close(got, expected, name: str, *, rtol: float = 1e-6, atol: float = 1e-8,
                hint: str | None = None) -> None:
    """Value-only comparison for results whose type does not matter (e.g. a float or a
    0-d array). Shapes must still agree: broadcasting does not count as a match."""
    got_arr = np.asarray(got, dtype=np.float64)
    exp_arr = np.asarray(expected, dtype=np.float64)
    if got_arr.shape != exp_arr.shape:
        _fail(name, f"expected shape {exp_arr.shape}, got {got_arr.shape}", hint)
    check_array(got_arr, exp_arr, name, rtol=rtol, atol=atol, hint=hint)


def check_raises(call, expected: type[BaseException], name: str, *, hint: str | None = None) -> None:
    """Check that ``call()`` raises ``expected`` (bad input gets a clear error): not another
    exception, and not a normal return. A stub's ``NotImplementedError`` says "not implemented"."""
    try:
        call()
    except expected:
        return
    except NotImplementedError:
        _fail(name, "is not implemented yet", hint)
    except Exception as err:
        _fail(name, f"should raise {expected.__name__}, got {type(err).__name__}: {err}", hint)
    _fail(name, f"should raise {expected.__name__}, but it returned", hint)


def check_grad(analytic, numeric, name: str, *, tol: float = 1e-7, hint: str | None = None) -> None:
    """Compare an analytic gradient with a numerical one by relative error.

    In float64 with centered differences, a correct gradient gives a relative error of
    about 1e-8 or smaller; 1e-7 is the default threshold. Kinks (ReLU at 0) can raise it.
    """
    numeric = np.asarray(numeric, dtype=np.float64)
    if type(analytic) is not np.ndarray:
        _fail(name, f"expected a numpy.ndarray, got {_describe(analytic)}", hint)
    if analytic.shape != numeric.shape:
        _fail(name, f"gradient has shape {analytic.shape}, but the parameter has shape {numeric.shape}",
              hint or "a gradient always has the shape of the thing it is the gradient of")
    if not np.all(np.isfinite(analytic)):
        _fail(name, "gradient contains NaN or inf", hint)
    err = rel_error(analytic, numeric)
    if not err < tol:
        diff = np.abs(analytic - numeric)
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
        _fail(name, f"relative error {err:.2e} against the numerical gradient (should be below {tol:.0e}); "
                    f"worst entry at index {where}: analytic {_exact(analytic[where])}, "
                    f"numerical {_exact(numeric[where])}", hint or
              "check each local derivative and that you multiply by the upstream gradient")
