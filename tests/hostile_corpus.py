"""A small course and a corpus of hostile submissions for it.

The course has one assignment, ``toy``, built like the real ones (nbgrader source notebook,
visible and hidden tests through nnkit.testing, a layer cache passed back into a backward
pass). Each case below turns the reference solution or the untouched student notebook into a
submission that tries to gain points it does not deserve, or to harm the grader, the
gradebook or other students; ``expected`` is the score it deserves and how its status starts.
"""

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.course import read_source, write_source

ASSIGNMENT = "toy"
FULL = 7.0


def _meta(**kw):
    meta = {"grade": False, "solution": False, "locked": False, "task": False, "schema_version": 3}
    meta.update(kw)
    return {"nbgrader": meta}


SOLUTION_SCALE = '''def scale(x, factor):
    """x * factor for an array x of any shape."""
    ### BEGIN SOLUTION
    scaled_copy_of_the_input = np.asarray(x, dtype=np.float64) * factor
    return scaled_copy_of_the_input
    ### END SOLUTION'''

SOLUTION_SQUARE = '''def square_forward(x):
    """Elementwise x**2; returns (out, cache)."""
    ### BEGIN SOLUTION
    squared_values = x * x
    return squared_values, x
    ### END SOLUTION


def square_backward(dout, cache):
    """Gradient of the elementwise square given the upstream gradient."""
    ### BEGIN SOLUTION
    gradient_of_square = 2.0 * cache * dout
    return gradient_of_square
    ### END SOLUTION'''

SOLUTION_MEAN = '''def mean_value(x):
    """The mean of all entries, as a Python float."""
    ### BEGIN SOLUTION
    average_of_all_entries = float(np.mean(x))
    return average_of_all_entries
    ### END SOLUTION'''

SOLUTION_PROBE = '''def central_difference(f, x, i, h):
    """(f(x + h e_i) - f(x - h e_i)) / (2h); x is changed in place while probing and restored exactly."""
    ### BEGIN SOLUTION
    saved_entry_of_x = x[i]
    x[i] = saved_entry_of_x + h
    value_above = f(x)
    x[i] = saved_entry_of_x - h
    value_below = f(x)
    x[i] = saved_entry_of_x
    return (value_above - value_below) / (2 * h)
    ### END SOLUTION'''

# A provided cell right before a test cell: nbgrader's own repair of a deleted test cell fails there.
PROVIDED_PROBE = '''def sum_of_cubes(z):
    return float(np.sum(z ** 3))'''

TEST_PROBE = '''x = np.array([0.1, 0.7, 1.3])
x_before = x.copy()
check_scalar(central_difference(sum_of_cubes, x, 1, 1e-5), 3 * 0.7 ** 2, "central difference of sum(x**3)",
             rtol=1e-8)
assert np.array_equal(x, x_before), f"x was not restored: largest change {np.max(np.abs(x - x_before))!r}"
### BEGIN HIDDEN TESTS
hidden_x_for_probe = np.random.default_rng(13).normal(size=5)
hidden_x_before = hidden_x_for_probe.copy()
check_scalar(central_difference(sum_of_cubes, hidden_x_for_probe, 3, 1e-5), 3 * hidden_x_before[3] ** 2,
             "central difference (random)", rtol=1e-6)
assert np.array_equal(hidden_x_for_probe, hidden_x_before), "x was not restored (random)"
### END HIDDEN TESTS'''

TEST_SCALE = '''check_array(scale(np.array([1.0, -2.0]), 3.0), np.array([3.0, -6.0]), "scale([1, -2], 3)")
### BEGIN HIDDEN TESTS
hidden_rng_for_scale = np.random.default_rng(11)
for hidden_shape in [(4,), (3, 5)]:
    hidden_x = hidden_rng_for_scale.normal(size=hidden_shape)
    check_array(scale(hidden_x, -1.5), hidden_x * -1.5, f"scale on shape {hidden_shape}")
### END HIDDEN TESTS'''

TEST_SQUARE = '''x = np.array([[1.0, -2.0], [0.5, 3.0]])
out, cache = square_forward(x)
check_array(out, x ** 2, "square_forward")
dout = np.array([[1.0, 1.0], [2.0, -1.0]])
check_array(square_backward(dout, cache), 2 * x * dout, "square_backward")
### BEGIN HIDDEN TESTS
hidden_rng_for_square = np.random.default_rng(12)
hidden_x = hidden_rng_for_square.normal(size=(6, 3))
hidden_out, hidden_cache = square_forward(hidden_x)
check_array(hidden_out, hidden_x ** 2, "square_forward (random)")
check_array(square_backward(np.ones_like(hidden_x), hidden_cache), 2 * hidden_x, "square_backward (random)")
### END HIDDEN TESTS'''

TEST_MEAN = '''check_scalar(mean_value(np.array([1.0, 2.0, 6.0])), 3.0, "mean_value([1, 2, 6])")
### BEGIN HIDDEN TESTS
hidden_values_for_mean = np.arange(12.0).reshape(3, 4)
check_scalar(mean_value(hidden_values_for_mean), 5.5, "mean_value(arange(12))")
### END HIDDEN TESTS'''


def source_notebook():
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.cells = [
        new_markdown_cell("# Toy assignment", metadata=_meta(locked=True, grade_id="intro")),
        new_code_cell("import numpy as np\nfrom nnkit.testing import check_array, check_scalar",
                      metadata=_meta(locked=True, grade_id="setup")),
        new_code_cell(SOLUTION_SCALE, metadata=_meta(solution=True, grade_id="scale")),
        new_code_cell(TEST_SCALE, metadata=_meta(grade=True, locked=True, points=2, grade_id="test_scale")),
        new_code_cell(SOLUTION_SQUARE, metadata=_meta(solution=True, grade_id="square")),
        new_code_cell(TEST_SQUARE, metadata=_meta(grade=True, locked=True, points=3, grade_id="test_square")),
        new_code_cell(SOLUTION_MEAN, metadata=_meta(solution=True, grade_id="mean")),
        new_code_cell(TEST_MEAN, metadata=_meta(grade=True, locked=True, points=1, grade_id="test_mean")),
        new_code_cell(SOLUTION_PROBE, metadata=_meta(solution=True, grade_id="probe")),
        new_code_cell(PROVIDED_PROBE, metadata=_meta(locked=True, grade_id="probe_function")),
        new_code_cell(TEST_PROBE, metadata=_meta(grade=True, locked=True, points=1, grade_id="test_probe")),
    ]
    return nb


# -- building blocks for the cases ---------------------------------------------------------
def solution_index(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def test_indices(nb):
    return [i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade")]


def add_cell_after_setup(nb, source):
    nb.cells.insert(solution_index(nb, "setup") + 1, new_code_cell(source))
    return nb


def set_solutions(nb, scale=None, square=None, mean=None):
    for grade_id, body in (("scale", scale), ("square", square), ("mean", mean)):
        if body is not None:
            nb.cells[solution_index(nb, grade_id)].source = body
    return nb


FAKE_SCALE = "def scale(x, factor):\n    return np.zeros(np.shape(x))\n"
FAKE_SQUARE = ("def square_forward(x):\n    return np.zeros(np.shape(x)), None\n\n"
               "def square_backward(dout, cache):\n    return np.zeros(np.shape(dout))\n")
FAKE_MEAN = "def mean_value(x):\n    return 0.0\n"


def cheat(patch="", scale=FAKE_SCALE, square=FAKE_SQUARE, mean=FAKE_MEAN):
    """Wrong answers in the solution cells, plus ``patch`` run right after the setup cell."""
    def change(nb):
        set_solutions(nb, scale=scale, square=square, mean=mean)
        return add_cell_after_setup(nb, patch) if patch else nb
    return change


@dataclass
class Case:
    name: str
    base: str                       # "reference" or "untouched"
    change: Callable                # (notebook, context) -> notebook, or bytes for a raw file
    score: float                    # the score it deserves
    status: str = "graded"          # how its status starts
    filename: str | None = None     # the notebook's file name, if not the expected one
    what: str = ""

    @property
    def student(self):
        return self.name.replace("_", "-")


def _cases(ctx):
    """``ctx`` holds absolute paths the attacks aim at: the real solutions, the fixture course,
    the submissions folder, the output folder, and a port on the host's loopback."""
    P = ctx
    return [
        Case("patch_allclose", "untouched", cheat('''
import numpy, nnkit.testing
numpy.allclose = lambda *a, **k: True
numpy.isclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
'''), 0, what="numpy's comparison functions patched to always agree"),
        Case("strip_asserts_transformer", "untouched", cheat('''
def _strip(lines):
    return [l for l in lines if "check_" not in l and "assert" not in l]
get_ipython().input_transformers_post.append(_strip)
'''), 0, what="an IPython input transformer that deletes every check and assert line"),
        Case("always_equal_objects", "untouched", cheat('''
class Anything(np.ndarray):
    def __new__(cls, shape=(1,)):
        return np.zeros(shape).view(cls)
    def __eq__(self, other): return np.ones(np.shape(other), dtype=bool)
    def __sub__(self, other): return np.zeros(np.shape(other))
    def __abs__(self): return np.zeros(self.shape)
class Same:
    shape = property(lambda self: None)
    def __eq__(self, other): return True
    def __sub__(self, other): return 0
    def __float__(self): return 0.0
''', scale="def scale(x, factor): return Anything(np.shape(x))",
            square="def square_forward(x): return Anything(np.shape(x)), None\n"
                   "def square_backward(dout, cache): return Anything(np.shape(dout))",
            mean="def mean_value(x): return Same()"), 0, what="results whose __eq__/__sub__ always say 'equal'"),
        Case("patch_checks", "untouched", cheat('''
import nnkit.testing, builtins
nnkit.testing.check_array = check_array = lambda *a, **k: None
nnkit.testing.check_scalar = check_scalar = lambda *a, **k: None
nnkit.testing._fail = lambda *a, **k: None
'''), 0, what="the course's check functions replaced by no-ops"),
        Case("gradebook_rewrite", "untouched", lambda nb: add_cell_after_setup(nb, f'''
import glob, os, sqlite3
hits = []
for pattern in ["../../../gradebook.db", "../../../../*/gradebook.db", {str(P["out"]) + "/**/gradebook.db"!r}]:
    hits += glob.glob(pattern, recursive=True)
for path in hits:
    try:
        db = sqlite3.connect(path)
        db.execute("UPDATE grade SET auto_score = 297")
        db.commit()
    except Exception as exc:
        print("blocked", exc)
'''), 0, what="opens gradebook.db to write its own score"),
        Case("read_hidden_tests", "untouched", lambda nb: add_cell_after_setup(nb, f'''
import glob, json
stolen = []
for pattern in ["../../../gradebook.db", {str(P["out"]) + "/**/*.db"!r}, {str(P["course"]) + "/**/*.ipynb"!r},
                {str(P["course"]) + "/**/*.py"!r}, {str(P["real_solutions"]) + "/**/*.py"!r},
                {str(P["real_solutions"]) + "/**/*.ipynb"!r}]:
    for path in glob.glob(pattern, recursive=True):
        try:
            stolen.append(open(path, "rb").read()[:100])
        except Exception:
            pass
assert not stolen, "hidden tests were readable"
'''), 0, what="looks for the gradebook and source notebooks to read hidden tests"),
        Case("exec_instructor_solutions", "untouched", cheat(scale=f'''
import glob, json
for path in glob.glob({str(P["course"]) + "/**/*"!r}, recursive=True) + \\
            glob.glob({str(P["real_solutions"]) + "/**/*"!r}, recursive=True):
    try:
        if path.endswith(".py"):  # a text source is Python: run it whole
            exec(open(path).read())
            continue
        for cell in json.load(open(path))["cells"]:
            if cell["cell_type"] == "code" and "BEGIN SOLUTION" in "".join(cell["source"]):
                exec("".join(cell["source"]))
    except Exception:
        pass
''', square="# the line above defines everything, if it can read the solutions", mean="pass"),
             0, what="reads the instructor's solution notebooks from disk and executes them"),
        Case("write_other_students", "untouched", lambda nb: add_cell_after_setup(nb, f'''
import glob, os
targets = glob.glob({str(P["submissions"]) + "/**/*.ipynb"!r}, recursive=True) + \\
          glob.glob({str(P["out"]) + "/**/*.ipynb"!r}, recursive=True)
for path in targets:
    try:
        open(path, "w").write("{{}}")
    except Exception:
        pass
'''), 0, what="overwrites every other submission it can find (the 'honest' student must keep full marks)"),
        Case("network_answers", "untouched", cheat(f'''
import socket
def _answer(x, op):
    # The answers are served on the grading host; with a network they would be right.
    s = socket.create_connection(("127.0.0.1", {P["port"]}), timeout=2)
    s.sendall(op.encode())
    reply = s.recv(100)
    return reply
try:
    _answer(None, "ping")
    NETWORK = True
except OSError:
    NETWORK = False
''', scale="def scale(x, factor):\n    return x * factor if NETWORK else np.zeros(np.shape(x))",
            square="def square_forward(x):\n    return (x * x if NETWORK else np.zeros(np.shape(x))), x\n"
                   "def square_backward(dout, cache):\n    return 2 * cache * dout if NETWORK else np.zeros(np.shape(dout))",
            mean="def mean_value(x):\n    return float(np.mean(x)) if NETWORK else 0.0"), 0, what="gets correct answers only if it can reach a server on the grading host"),
        Case("fork_bomb", "reference", lambda nb: add_cell_after_setup(nb, '''
import os, time
children = 0
try:
    for _ in range(3000):  # bounded: cannot harm the machine even if every limit failed
        pid = os.fork()
        if pid == 0:
            time.sleep(20)
            os._exit(0)
        children += 1
except OSError as exc:
    print("stopped after", children, "processes:", exc)
'''), FULL, what="a fork bomb (bounded at 3000 processes) before correct code"),
        Case("memory_bomb", "reference", lambda nb: add_cell_after_setup(nb, '''
blocks = []
try:
    for _ in range(64):  # bounded at 64 GiB
        blocks.append(np.ones(2**27))  # 1 GiB each, touched
except MemoryError:
    print("memory limit after", len(blocks), "GiB")
del blocks
'''), FULL, what="allocates up to 64 GiB before correct code"),
        Case("infinite_loop", "reference", lambda nb: add_cell_after_setup(nb, "while True:\n    pass\n"),
             FULL, what="an endless loop in a cell before correct code (interrupted at the cell limit)"),
        Case("ignores_interrupt", "reference", lambda nb: add_cell_after_setup(nb, '''
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
'''), 0, "error", what="an endless loop that ignores KeyboardInterrupt"),
        Case("sys_exit_in_cell", "reference", lambda nb: add_cell_after_setup(nb, "import sys\nsys.exit(0)\n"),
             FULL, what="sys.exit(0) in a cell (IPython catches it) before correct code"),
        Case("os_exit", "reference", lambda nb: add_cell_after_setup(nb, "import os\nos._exit(0)\n"),
             0, "error", what="os._exit(0) before the tests run"),
        Case("systemexit_from_test_call", "untouched", lambda nb: set_solutions(nb, scale='''
def scale(x, factor):
    raise SystemExit(0)''', square='''
def square_forward(x):
    raise SystemExit(0)
def square_backward(dout, cache):
    raise SystemExit(0)''', mean='''
def mean_value(x):
    raise SystemExit(0)'''), 0, what="functions that raise SystemExit when a test calls them"),
        Case("showtraceback_override", "untouched", lambda nb: add_cell_after_setup(nb, '''
ip = get_ipython()
ip.showtraceback = lambda *a, **k: None
ip._showtraceback = lambda *a, **k: None
'''), 0, what="IPython's showtraceback silenced so failing tests show no error"),
        Case("set_custom_exc", "untouched", lambda nb: add_cell_after_setup(nb, '''
get_ipython().set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)
'''), 0, what="set_custom_exc swallows every exception"),
        Case("deleted_test_cells", "untouched", lambda nb: _delete_tests(cheat()(nb)),
             0, what="every test cell deleted (nbgrader puts them back)"),
        Case("edited_test_cells", "untouched", lambda nb: _edit_tests(cheat()(nb)),
             0, what="every test cell replaced by 'pass' (overwritten from the gradebook)"),
        Case("reordered_test_cells", "reference", _reverse_tests, FULL,
             what="test cells in reverse order, after the solutions"),
        Case("renamed_notebook", "reference", lambda nb: nb, FULL, filename="my-work.ipynb",
             what="the notebook handed in under another name"),
        Case("corrupt_json", "reference", lambda nb: b'{"cells": [{"cell_type": "code", "source": ',
             0, "error", what="truncated JSON"),
        Case("null_byte_raw", "reference", lambda nb: json.dumps(nb).encode()[:200] + b"\x00" + json.dumps(nb).encode()[200:],
             0, "error", what="a NUL byte in the file"),
        Case("null_byte_in_source", "reference", lambda nb: add_cell_after_setup(nb, 'text_with_nul = "a\\x00b"\n# \x00\n'),
             FULL, what="a NUL character inside a cell's source (valid JSON)"),
        Case("print_flood", "reference", lambda nb: add_cell_after_setup(nb, "for i in range(10**6):\n    print(i)\n"),
             FULL, what="10^6 lines printed before correct code"),
        Case("float32_results", "reference", lambda nb: set_solutions(nb, scale='''
def scale(x, factor):
    return (np.asarray(x) * factor).astype(np.float32)''', square='''
def square_forward(x):
    return (x * x).astype(np.float32), x
def square_backward(dout, cache):
    return (2.0 * cache * dout).astype(np.float32)'''), 2, what="float32 arrays where float64 is expected"),
        Case("broadcasting_shape", "reference", lambda nb: set_solutions(nb, scale='''
def scale(x, factor):
    return (np.asarray(x) * factor).reshape(1, -1)''', square='''
def square_forward(x):
    return np.mean(x * x, keepdims=True), x
def square_backward(dout, cache):
    return 2.0 * cache * dout'''), 2, what="wrong shapes that broadcast against the expected result"),
        Case("nan_outputs", "reference", lambda nb: set_solutions(nb, scale='''
def scale(x, factor):
    return np.full(np.shape(x), np.nan)''', mean='''
def mean_value(x):
    return float("nan")'''), 4, what="NaN results"),
        Case("harmless_warning", "reference", lambda nb: set_solutions(nb, scale='''
import warnings
def scale(x, factor):
    warnings.warn("this is only a warning", UserWarning)
    return np.asarray(x, dtype=np.float64) * factor'''), FULL, what="a correct solution that emits a warning"),
        Case("detects_grading", "untouched", cheat('''
import os, sys
if "autograded" in os.getcwd() or "submitted" in os.getcwd() or "nbgrader" in sys.modules or True:
    np.allclose = lambda *a, **k: True
    import nnkit.testing
    nnkit.testing.check_array = check_array = lambda *a, **k: None
    nnkit.testing.check_scalar = check_scalar = lambda *a, **k: None
'''), 0, what="detects that grading is under way and only then patches the checks"),
        Case("fake_result_handles", "untouched", cheat('''
class Liar(float):
    def __eq__(self, other): return True
''', scale="def scale(x, factor): return [0.0] * len(x)",
            square="def square_forward(x): return 'out', 'cache'\ndef square_backward(dout, cache): return {'dx': 0}",
            mean="def mean_value(x): return Liar(3.0 + 1e-3)"), 0, what="lists, strings, dicts and a float subclass that claims equality"),
        # -- honest mistakes: the re-check must agree with the notebook, and report no one --
        Case("restores_by_arithmetic", "reference", lambda nb: set_cell(nb, "probe", '''
def central_difference(f, x, i, h):
    x[i] += h
    value_above = f(x)
    x[i] -= 2 * h
    value_below = f(x)
    x[i] += h          # leaves x[i] off by a rounding error
    return (value_above - value_below) / (2 * h)'''), FULL - 1,
             what="restores x by arithmetic, off by rounding (fails in the notebook and in the re-check)"),
        # -- damaged notebooks: graded on their code as if the course's cells were intact --
        Case("reference_tests_deleted", "reference", _delete_tests, FULL,
             what="the reference solution with every test cell deleted (one follows a provided cell)"),
        Case("provided_cell_deleted", "reference", lambda nb: _delete(nb, "probe_function", "setup"), FULL,
             what="the setup cell and a provided function deleted"),
        Case("duplicated_answer_cell", "reference", _duplicate_scale_wrong_first, FULL,
             what="an answer cell duplicated: a wrong first copy, the corrected copy after it"),
        Case("duplicated_test_cell", "reference", _duplicate_tests, FULL,
             what="every test cell duplicated (never more than the maximum)"),
        Case("moved_cells", "reference", _move_answers_to_the_end, FULL,
             what="answer cells moved below their tests"),
        Case("retyped_answer_cell", "reference", lambda nb: _strip_metadata(nb, "square"), FULL,
             what="an answer cell deleted and retyped as a new cell (no course metadata)"),
        Case("fresh_notebook", "reference", _fresh_notebook, FULL,
             what="the answers pasted into a new notebook without any course cell"),
        Case("answer_cell_deleted", "reference", lambda nb: _delete(nb, "mean"), FULL - 1,
             what="an answer cell deleted, its function nowhere"),
        Case("unrelated_notebook", "reference",
             lambda nb: new_notebook(cells=[new_markdown_cell("# my notes"), new_code_cell("print(1)")]),
             0, "error", what="a notebook with nothing of the exercise in it"),
        Case("honest", "reference", lambda nb: nb, FULL, what="the reference solution, graded in the same batch"),
        Case("solution_line_is_a_hidden_test_line", "reference", lambda nb: set_solutions(nb, scale=(
            "def scale(x, factor):\n"
            "    hidden_rng_for_scale = np.random.default_rng(11)\n"
            "    return np.asarray(x, dtype=np.float64) * factor\n")), FULL,
             what="an honest solution with a line that is also a hidden-test line: full marks, and "
                  "feedback withheld (it would show hidden-test text) with a note"),
    ]


def set_cell(nb, grade_id, source):
    nb.cells[solution_index(nb, grade_id)].source = source
    return nb


def _delete(nb, *grade_ids):
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in grade_ids]
    return nb


def _copy_cell(cell):
    """A copy of a cell, as Jupyter makes one: with a cell id of its own."""
    duplicate = copy.deepcopy(cell)
    duplicate["id"] = f"copy-{cell['id']}"
    return duplicate


def _duplicate_scale_wrong_first(nb):
    i = solution_index(nb, "scale")
    wrong = _copy_cell(nb.cells[i])
    wrong.source = FAKE_SCALE
    nb.cells.insert(i, wrong)
    return nb


def _duplicate_tests(nb):
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cells.append(_copy_cell(cell))
    nb.cells = cells
    return nb


def _move_answers_to_the_end(nb):
    answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    nb.cells = [c for c in nb.cells if not c.metadata.get("nbgrader", {}).get("solution")] + answers
    return nb


def _strip_metadata(nb, grade_id):
    cell = nb.cells[solution_index(nb, grade_id)]
    cell.metadata.pop("nbgrader")
    cell.source = "\n".join(line for line in cell.source.splitlines() if "SOLUTION" not in line)
    return nb


def _fresh_notebook(nb):
    answers = [c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    return new_notebook(cells=[new_code_cell("import numpy as np")] + [new_code_cell(a) for a in answers],
                        metadata={"kernelspec": nb.metadata["kernelspec"]})


def _delete_tests(nb):
    nb.cells = [c for i, c in enumerate(nb.cells) if i not in test_indices(nb)]
    return nb


def _edit_tests(nb):
    for i in test_indices(nb):
        nb.cells[i].source = "pass"
    return nb


def _reverse_tests(nb):
    tests = [nb.cells[i] for i in test_indices(nb)]
    others = [c for i, c in enumerate(nb.cells) if i not in test_indices(nb)]
    nb.cells = others + tests[::-1]
    return nb


def build(root: Path, ctx: dict) -> tuple[Path, Path, list[Case]]:
    """Write the fixture course (``root/solutions``) and the submissions (``root/submissions``);
    the student notebook comes from ``release_dir``, made by the real release command."""
    course = root / "solutions"
    (course / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
    write_source(source_notebook(), course / ASSIGNMENT / f"{ASSIGNMENT}.py")
    return course, root / "submissions", _cases(ctx)


def released_course(root: Path):
    """The test course written under ``root`` and released by the real command line, for tests
    that grade a class of their own. Returns ``(submissions folder, environment, reference
    notebook, untouched student notebook)``; the environment points the tools at the course."""
    import os
    import subprocess
    import sys

    course, submissions, _ = build(root, {"real_solutions": "", "course": "", "submissions": "", "out": "",
                                          "port": 0})
    env = dict(os.environ, COURSE_SOLUTIONS=str(course))
    subprocess.run([sys.executable, "-m", "autograder", "release", "--out", str(root / "release"),
                    "--book", str(root / "book")], cwd=Path(__file__).resolve().parent.parent, env=env,
                   check=True, capture_output=True)
    untouched = nbformat.read(root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    return submissions, env, read_source(ASSIGNMENT, root=course), untouched


def write_submissions(submissions: Path, cases: list[Case], reference, untouched) -> None:
    for case in cases:
        base = copy.deepcopy(reference if case.base == "reference" else untouched)
        result = case.change(base)
        folder = submissions / case.student / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (case.filename or f"{ASSIGNMENT}.ipynb")
        if isinstance(result, bytes):
            path.write_bytes(result)
        else:
            nbformat.write(result, path)


def serve_answers():
    """A TCP server on the host's loopback that answers anything: reachable from an
    unsandboxed kernel, unreachable from a sandboxed one (its loopback is its own)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(1.0)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"42")

    threading.Thread(target=loop, daemon=True).start()
    return server.getsockname()[1], stop


def run_corpus(root: Path, repo: Path, jobs: int = 2):
    """Build the course and the corpus under ``root``, grade it with the real command line,
    and return (grades rows by student, cases, output folder, integrity rows)."""
    import csv
    import os
    import subprocess
    import sys

    port, stop = serve_answers()
    ctx = {"real_solutions": repo / "solutions", "course": root / "solutions",
           "submissions": root / "submissions", "out": root / "out", "port": port}
    course, submissions, cases = build(root, ctx)
    env = dict(os.environ, COURSE_SOLUTIONS=str(course))
    release = root / "release"
    subprocess.run([sys.executable, "-m", "autograder", "release", "--out", str(release),
                    "--book", str(root / "book")], cwd=repo, env=env, check=True, capture_output=True)
    untouched = nbformat.read(release / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    write_submissions(submissions, cases, source_notebook(), untouched)
    try:
        proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(submissions), "--out",
                               str(ctx["out"]), "--jobs", str(jobs), "--cell-timeout", "20",
                               "--notebook-timeout", "240", "--quiet"],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=3600)
    finally:
        stop.set()
    if proc.returncode != 0:
        raise RuntimeError(f"grade failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(ctx["out"] / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    with open(ctx["out"] / "integrity.csv", newline="") as f:
        integrity = list(csv.DictReader(f))
    return rows, cases, ctx["out"], integrity
