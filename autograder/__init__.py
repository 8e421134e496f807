"""The course's grading tools, built on nbgrader (instructor side; never published).

``python -m autograder release`` makes the student notebooks from ``solutions/``;
``python -m autograder grade SUBMISSIONS --out OUT`` grades a class.
"""

import os as _os
import sys as _sys

# nbformat validates notebooks with jsonschema, which imports rfc3987_syntax, when installed, to
# check IRI strings; no notebook schema uses that format, and building its grammar costs about
# 1.3 s in every grading process (one per submission). Marking it absent skips that check only.
_sys.modules.setdefault("rfc3987_syntax", None)

# nbgrader runs the `alembic` command (and the kernel) by name: make the tools installed beside
# this interpreter findable even when the virtual environment was not activated.
_bin = _os.path.dirname(_sys.executable)
if _bin not in _os.environ.get("PATH", "").split(_os.pathsep):
    _os.environ["PATH"] = _bin + _os.pathsep + _os.environ.get("PATH", "")
