"""Feedback that shows students their results without the hidden tests.

nbgrader's feedback shows test cells as they were executed — hidden tests included — and
IPython tracebacks quote the failing source lines. Before the HTML is rendered, this
preprocessor removes the hidden-test region of every test cell and reduces each error in a
test cell to its final line (``AssertionError: <message>``), which is where the course's
checks put their explanation.
"""

import re
from pathlib import Path

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from .course import BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS, is_test_cell
from .result import Outcome, SubmissionResult

ANSI = re.compile(r"\x1b\[[0-9;]*m")
HIDDEN_NOTE = "# (hidden tests run here; their code is not shown)"


def without_hidden_tests(source: str) -> str:
    kept, hiding = [], False
    for line in source.splitlines():
        if BEGIN_HIDDEN_TESTS in line:
            hiding = True
            kept.append(line[: len(line) - len(line.lstrip())] + HIDDEN_NOTE)
        elif hiding and END_HIDDEN_TESTS in line:
            hiding = False
        elif not hiding:
            kept.append(line)
    return "\n".join(kept)


def error_summary(output) -> str:
    ename = ANSI.sub("", str(output.get("ename", "Error")))
    evalue = ANSI.sub("", str(output.get("evalue", "")))
    return f"{ename}: {evalue}" if evalue else ename


class SanitizeFeedback(NbGraderPreprocessor):
    # NbGraderPreprocessor, unlike nbconvert's base class, is enabled by default.
    result_path = Unicode("", help="the submission's result record (result.json)").tag(config=True)

    def preprocess(self, nb, resources):
        path = Path(self.result_path) if self.result_path else None
        self._verdicts = SubmissionResult.load(path).verdicts() if path and path.exists() else {}
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if is_test_cell(cell):
            cell.source = without_hidden_tests(cell.source)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [error_summary(output)]
            grade_id = cell.metadata.nbgrader.get("grade_id")
            if grade_id in self._verdicts:
                verdict = self._verdicts[grade_id]
                shown = {error_summary(o) for o in cell.get("outputs", []) if o.get("output_type") == "error"}
                if verdict.outcome is Outcome.PASSED:
                    said = verdict.outcome.value
                elif verdict.reason in shown:  # the message is right above: not twice
                    said = f"{verdict.outcome.value}, with the error shown above"
                else:
                    said = f"{verdict.outcome.value}: {verdict.reason}"
                cell.outputs.append(new_output("stream", name="stdout", text=(
                    f"[grader] Re-checked outside your notebook: {said}\n")))
        return cell, resources


# nbgrader's template names every test "Test cell" in the score summary and lets long lines
# of output run off the page.
_SUMMARY_LINK = re.compile(r'<a href="#([A-Za-z0-9_.-]+)">Test cell</a>')
_WRAP_OUTPUT = "<style>pre { white-space: pre-wrap; overflow-wrap: anywhere; }</style>\n</head>"


def finish_html(html: str) -> str:
    """The rendered feedback, with each test named in the summary and long lines wrapped."""
    html = _SUMMARY_LINK.sub(lambda m: f'<a href="#{m[1]}"><code>{m[1]}</code></a>', html)
    return html.replace("</head>", _WRAP_OUTPUT, 1)
