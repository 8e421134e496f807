"""The course's grading tools, built on nbgrader (instructor side; never published).

``python -m autograder release`` makes the student notebooks from ``solutions/``;
``python -m autograder grade SUBMISSIONS --out OUT`` grades a class.
"""

import os as _os
import sys as _sys

# nbgrader runs the `alembic` command (and the kernel) by name: make the tools installed beside
# this interpreter findable even when the virtual environment was not activated.
_bin = _os.path.dirname(_sys.executable)
if _bin not in _os.environ.get("PATH", "").split(_os.pathsep):
    _os.environ["PATH"] = _bin + _os.pathsep + _os.environ.get("PATH", "")
