"""nnkit: small helpers shared by the Training Neural Networks course.

Public and importable by students: gradient checking, test assertions with helpful
messages, locally generated data sets, device choice and plotting helpers.
It never contains the solution of an exercise.
"""

# `data` is a submodule students call as nnkit.data.load_mnist1d(); importing it costs only NumPy
# (the generators import their packages when called).
from . import data
from .device import pick_device
from .gradcheck import grad_check, numerical_grad, numerical_grad_array, rel_error
from .testing import check_array, check_close, check_grad, check_raises, check_scalar

__all__ = [
    "data",
    "pick_device",
    "grad_check",
    "numerical_grad",
    "numerical_grad_array",
    "rel_error",
    "check_array",
    "check_close",
    "check_grad",
    "check_raises",
    "check_scalar",
]
__version__ = "0.1.0"
