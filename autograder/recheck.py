"""The trusted re-check: every test cell runs again, outside the student's process.

A fresh kernel (sandboxed like the grading kernel) runs the submission's own code: its
solution cells and the course's provided cells. The test cells do not run there. They run in
this process, from the gradebook's copy of their source, with the functions and classes the
exercise asks for replaced by proxies: calling one sends the arguments to the student's
kernel, runs the student's function there, and brings the result back as plain data (JSON and
NumPy arrays loaded with ``allow_pickle=False``). Whatever the student's code patches in its
own process (numpy, assert, IPython, builtins), the comparisons here use this process's
untouched libraries; a look-alike object comes back as an opaque handle, not as an array; an
early exit ends the student's kernel and fails the tests that remain.

Provided cells that use the student's code (a demo, a helper that drives a student's class)
run only in the student's kernel, and what they define is reached through proxies too; other
provided cells (imports, data, pure helpers) run in both places.
"""

import ast
import contextlib
import io
import json
import os
import pickle
import queue
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from .course import is_test_cell, nbgrader_meta
from .result import Outcome, Verdict

DRIVER = (Path(__file__).parent / "kernel_driver.py").read_text()
MAX_MESSAGE_BYTES = 64 * 1024**2


class StudentCodeError(Exception):
    """The student's code raised, timed out, or its kernel is gone."""


PASSED_THROUGH = {cls.__name__: cls for cls in (
    AttributeError, FloatingPointError, ValueError, TypeError, ZeroDivisionError, IndexError,
    KeyError, RuntimeError, NotImplementedError, OverflowError)}


def strip_magics(source: str) -> str:
    """A cell's source as plain Python: IPython magics and shell lines blanked."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def defined_names(source: str) -> set[str]:
    """Top-level names a cell defines (functions, classes, assigned variables; not imports)."""
    try:
        tree = ast.parse(strip_magics(source))
    except (SyntaxError, ValueError):  # ValueError: a NUL character in the source
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def used_names(source: str) -> set[str]:
    try:
        tree = ast.parse(strip_magics(source))
    except (SyntaxError, ValueError):
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def exercise_api(source_notebook) -> set[str]:
    """The names the exercise asks students to define: what its solution cells define."""
    names = set()
    for cell in source_notebook.cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):
            names |= defined_names(cell.source)
    return names


class Bridge:
    """Requests from this process to the student's kernel, through files in its scratch folder."""

    def __init__(self, km, kc, rpc_dir: Path, timeout: float):
        self.km, self.kc, self.rpc_dir, self.timeout = km, kc, rpc_dir, timeout
        self.dead = None
        self.callbacks: dict[int, object] = {}
        self.served: set[str] = set()
        self.count = 0
        self.calls: list[tuple[list, dict]] = []  # the arguments of the calls under way

    # -- executing code in the kernel ---------------------------------------------------
    def execute(self, code: str, timeout: float | None = None) -> str | None:
        """Run code in the kernel; returns an error summary or None."""
        if self.dead:
            raise StudentCodeError(self.dead)
        # stop_on_error=False: each cell is judged on its own. With ipykernel's default, the
        # kernel answers an erroring cell first and only then starts aborting queued requests,
        # so the next request could be aborted or not depending on timing.
        msg_id = self.kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            self._serve_callbacks()
            self._drain_iopub()
            try:
                reply = self.kc.get_shell_msg(timeout=0.005)
            except queue.Empty:
                if not self.km.is_alive():
                    self.dead = "the notebook's kernel stopped (the code exited or crashed)"
                    raise StudentCodeError(self.dead)
                if time.monotonic() > deadline:
                    self._interrupt()
                    raise StudentCodeError(f"timed out after {timeout or self.timeout:g} s")
                continue
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            content = reply["content"]
            if content.get("status") == "error":
                return f"{content.get('ename')}: {content.get('evalue')}"
            if content.get("status") != "ok":
                return f"the kernel did not run the code (status {content.get('status')!r})"
            return None

    def _interrupt(self):
        self.km.interrupt_kernel()
        end = time.monotonic() + 30  # a kernel still flushing a flood of output answers late
        while time.monotonic() < end:
            self._drain_iopub()
            try:
                self.kc.get_shell_msg(timeout=0.05)
                return
            except queue.Empty:
                continue
        # It ignores interrupts: nothing more can be asked of it.
        self.km.shutdown_kernel(now=True)
        self.dead = "the notebook's kernel did not stop when interrupted and was ended"

    def _drain_iopub(self):
        for _ in range(1000):
            try:
                self.kc.get_iopub_msg(timeout=0)
            except queue.Empty:
                return

    # -- requests -----------------------------------------------------------------------
    def request(self, target: dict, op: str, **fields):
        self.count += 1
        stem = f"r{self.count}"
        arrays, objects, memo = {}, [], {}
        message = {"target": target, "op": op}
        for key, value in fields.items():
            message[key] = self._encode(value, arrays, objects, memo)
        self._write(stem + ".req", message, arrays, objects)
        arguments = [fields.get("args", []), fields.get("kwargs", {})]
        self.calls.append(arguments)
        try:
            error = self.execute(f"__tnn_serve({stem!r})")
        finally:
            self.calls.pop()
        result_path = self.rpc_dir / f"{stem}.res.json"
        if error or not result_path.exists():
            raise StudentCodeError(error or "the student's kernel gave no answer")
        response, arrays = self._read(stem + ".res")
        if not isinstance(response, dict) or "ok" not in response:
            raise StudentCodeError("the student's kernel gave a malformed answer")
        if op == "call" and "arguments_after" in response:
            self._write_back_arguments(arguments, response["arguments_after"], arrays)
        if not response["ok"]:
            kind = str(response.get("error_type", "Error"))
            text = f"{kind}: {response.get('error', '')}"
            if kind in PASSED_THROUGH:
                # A test may expect one of these (np.errstate raising FloatingPointError, a
                # ValueError for bad input); raising it can only cost the student points.
                raise PASSED_THROUGH[kind](response.get("error", ""))
            raise StudentCodeError(text)
        return self._decode(response.get("value"), arrays)

    def _write(self, stem, message, arrays, objects):
        if arrays:
            np.savez(self.rpc_dir / f"{stem}.npz", **arrays)
        if objects:
            with open(self.rpc_dir / f"{stem}.pkl", "wb") as f:
                pickle.dump(objects, f)
        tmp = self.rpc_dir / f"{stem}.json.tmp"
        tmp.write_text(json.dumps(message))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.rpc_dir / f"{stem}.json")

    def _read(self, stem):
        """Read what the student's side wrote: JSON and plain numeric arrays, nothing else."""
        path = self.rpc_dir / f"{stem}.json"
        if path.is_symlink() or path.stat().st_size > MAX_MESSAGE_BYTES:
            raise StudentCodeError("the student's kernel wrote an oversized or linked answer")
        message = json.loads(path.read_text())
        arrays = {}
        npz = self.rpc_dir / f"{stem}.npz"
        if npz.exists():
            if npz.is_symlink() or npz.stat().st_size > MAX_MESSAGE_BYTES:
                raise StudentCodeError("the student's kernel wrote an oversized or linked answer")
            try:
                with np.load(npz, allow_pickle=False) as data:
                    arrays = {k: data[k] for k in data.files}
            except Exception as exc:
                raise StudentCodeError(f"unreadable arrays from the student's kernel ({exc})") from None
        return message, arrays

    def _serve_callbacks(self):
        for path in sorted(self.rpc_dir.glob("cb*.req.json")):
            stem = path.name[: -len(".req.json")]
            if stem in self.served:
                continue
            self.served.add(stem)
            arrays_out, objects = {}, []
            try:
                message, arrays = self._read(stem + ".req")
                if self.calls and "arguments_after" in message:
                    # The test's function sees the arguments as the student's code has left
                    # them so far (a closure reading the array being probed).
                    self._write_back_arguments(self.calls[-1], message["arguments_after"], arrays)
                function = self.callbacks[int(message["callback"])]
                args = self._decode(message["args"], arrays)
                kwargs = self._decode(message["kwargs"], arrays)
                value = function(*args, **kwargs)
                response = {"ok": True, "value": self._encode(value, arrays_out, objects)}
            except Exception as exc:
                arrays_out = {}
                response = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self._write(stem + ".res", response, arrays_out, [])

    # -- what the student's code did to its arguments ---------------------------------------
    def _write_back_arguments(self, arguments, nodes, arrays):
        """``arguments`` is [args, kwargs] of a call, ``nodes`` what became of them."""
        if not (isinstance(nodes, list) and len(nodes) == 2):
            raise StudentCodeError("malformed answer from the student's kernel")
        for original, node in zip(arguments, nodes):
            self._write_back(original, node, arrays)

    def _write_back(self, original, node, arrays):
        """Give the test's argument ``original`` the state the student's code left its copy in
        (``node``, from the kernel driver's ``after``): arrays and tensors are written in place,
        dicts and lists entry by entry, a module's parameters and buffers copied in. Returns
        the value a container should hold (a new object where the type or shape changed)."""
        if node == {"$same": 0}:
            return original
        if not isinstance(node, dict) or len(node) != 1:
            return self._decode(node, arrays)
        (kind, payload), = node.items()
        torch = sys.modules.get("torch")
        is_tensor = torch is not None and isinstance(original, torch.Tensor)
        if kind == "$state" and not (torch is not None and isinstance(original, torch.nn.Module)):
            return original  # only a module of the test's has parameters to receive
        if kind == "$state":
            if not isinstance(payload, list):
                raise StudentCodeError("malformed answer from the student's kernel")
            state = original.state_dict(keep_vars=True)
            with torch.no_grad():
                for name, value_node in payload:
                    value = self._decode(value_node, arrays)
                    target = state.get(name) if isinstance(name, str) else None
                    if target is not None and isinstance(value, torch.Tensor) and value.shape == target.shape:
                        target.copy_(value.to(target.dtype))
            return original
        if kind in ("$array", "$tensor", "$npscalar") and (isinstance(original, np.ndarray) or is_tensor):
            value = self._decode(node, arrays)
            if is_tensor:
                value = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
                if value.shape == original.shape:
                    with torch.no_grad():
                        original.copy_(value.to(original.dtype))
                    return original
                return value
            value = np.asarray(value)
            if value.shape == original.shape and original.flags.writeable:
                original[...] = value
                return original
            return value
        if kind == "$dict" and type(original) is dict and isinstance(payload, list):
            kept = set()
            for pair in payload:
                if not (isinstance(pair, list) and len(pair) == 2 and type(pair[0]) in (str, int)):
                    raise StudentCodeError("malformed answer from the student's kernel")
                key, child = pair
                kept.add(key)
                original[key] = (self._write_back(original[key], child, arrays) if key in original
                                 else self._decode(child, arrays))
            for key in [k for k in original if k not in kept]:
                del original[key]
            return original
        if kind in ("$list", "$tuple") and type(original) in (list, tuple) and isinstance(payload, list):
            items = [self._write_back(original[i], child, arrays) if i < len(original)
                     else self._decode(child, arrays) for i, child in enumerate(payload)]
            if type(original) is list:
                original[:] = items
            return original
        return self._decode(node, arrays)

    # -- data across the boundary -------------------------------------------------------
    def _encode(self, value, arrays, objects, memo=None):
        """This process's values, for the student's side. Callables stay here (the student's
        code calls them back); other objects travel pickled, one way only. ``memo`` gives an
        array passed twice one key, so that it is one array on the other side too."""
        # A tensor can exist here only once torch has been imported (a test cell did it):
        # a test without tensors does not pay for the import.
        torch = sys.modules.get("torch")
        memo = {} if memo is None else memo
        if value is None or isinstance(value, (bool, str)) or type(value) is int:
            return value
        if isinstance(value, float):
            return {"$float": repr(float(value))}
        if id(value) in memo and isinstance(value, np.ndarray | getattr(torch, "Tensor", np.ndarray)):
            return memo[id(value)]
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
            key = f"a{len(arrays)}"
            arrays[key] = value
            memo[id(value)] = {"$array": key}
            return {"$array": key}
        if isinstance(value, np.generic) and value.dtype.kind in "biufc":
            key = f"a{len(arrays)}"
            arrays[key] = np.array(value)
            return {"$npscalar": key}
        if torch is not None and isinstance(value, torch.Tensor):
            key = f"a{len(arrays)}"
            arrays[key] = value.detach().cpu().numpy()
            memo[id(value)] = {"$tensor": key}
            return {"$tensor": key}
        if isinstance(value, RemoteObject):
            if value._bridge is not self or value._target.get("handle") is None:
                raise TypeError("a proxy of another kernel cannot be passed here")
            return {"$handle": value._target["handle"]}
        if type(value) in (list, tuple):
            return {"$" + type(value).__name__: [self._encode(v, arrays, objects, memo) for v in value]}
        if type(value) is dict and all(type(k) in (str, int) for k in value):
            return {"$dict": [[k, self._encode(v, arrays, objects, memo)] for k, v in value.items()]}
        if callable(value) and not isinstance(value, type) and not (
                torch is not None and isinstance(value, torch.nn.Module)):
            callback_id = len(self.callbacks) + 1
            self.callbacks[callback_id] = value
            return {"$callback": callback_id}
        objects.append(value)
        return {"$object": len(objects) - 1}

    def _decode(self, node, arrays):
        """The student's answer as plain data; anything else becomes an opaque handle."""
        if node is None or isinstance(node, (bool, str)) or type(node) is int:
            return node
        if isinstance(node, list):
            raise StudentCodeError("malformed answer from the student's kernel")
        if not isinstance(node, dict) or len(node) != 1:
            raise StudentCodeError("malformed answer from the student's kernel")
        (kind, payload), = node.items()
        if kind == "$float":
            return float(payload)
        if kind in ("$array", "$npscalar", "$tensor"):
            array = arrays.get(payload)
            if array is None or array.dtype.kind not in "biufc":
                raise StudentCodeError("the student's kernel sent a non-numeric array")
            if kind == "$npscalar":
                return array[()] if array.ndim == 0 else array
            if kind == "$tensor":
                import torch  # only answers that hold tensors need it

                return torch.from_numpy(np.array(array))
            return np.array(array)
        if kind in ("$list", "$tuple"):
            items = [self._decode(v, arrays) for v in payload]
            return items if kind == "$list" else tuple(items)
        if kind == "$dict":
            if not all(isinstance(pair, list) and len(pair) == 2 and type(pair[0]) in (str, int)
                       for pair in payload):
                raise StudentCodeError("malformed answer from the student's kernel")
            return {k: self._decode(v, arrays) for k, v in payload}
        if kind == "$handle" and type(payload) is int:
            return RemoteObject(self, {"handle": payload})
        raise StudentCodeError(f"unknown value from the student's kernel ({kind})")


class RemoteObject:
    """Something that lives in the student's kernel: a name there, or a handle to an object."""

    def __init__(self, bridge: Bridge, target: dict):
        object.__setattr__(self, "_bridge", bridge)
        object.__setattr__(self, "_target", target)

    def __call__(self, *args, **kwargs):
        return self._bridge.request(self._target, "call", args=list(args), kwargs=dict(kwargs),
                                    errstate=dict(np.geterr()))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._bridge.request(self._target, "getattr", name=name)

    def __getitem__(self, key):
        return self._bridge.request(self._target, "getitem", key=key)

    def __len__(self):
        return self._bridge.request(self._target, "len")

    def __iter__(self):
        return iter(self._bridge.request(self._target, "iter"))

    def __repr__(self):
        where = self._target.get("name") or f"object #{self._target.get('handle')}"
        return f"<student object {where}>"


def _run_local(source: str, namespace: dict) -> Verdict:
    """Run trusted code here."""
    try:
        code = compile(strip_magics(source), "<test cell>", "exec")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(code, namespace)
    except StudentCodeError as exc:
        return Verdict(Outcome.FAILED, f"your code failed when the test called it: {exc}")
    except AssertionError as exc:
        return Verdict(Outcome.FAILED, f"AssertionError: {exc}")
    except Exception as exc:
        return Verdict(Outcome.FAILED, f"{type(exc).__name__}: {exc}")
    return Verdict.passed()


def recheck(notebook, api: set[str], scratch: Path, km_factory, *,
            cell_timeout: float) -> dict[str, Verdict]:
    """Re-run the tests of an autograded notebook; ``{grade_id: verdict}``."""
    rpc = scratch / ".rpc"
    if rpc.exists():
        shutil.rmtree(rpc)
    rpc.mkdir()
    os.chmod(rpc, 0o777)
    km = km_factory()
    km.start_kernel(cwd=str(scratch))
    kc = km.client()
    kc.start_channels()
    results: dict[str, Verdict] = {}
    try:
        kc.wait_for_ready(timeout=120)
        bridge = Bridge(km, kc, rpc, cell_timeout)
        bridge.execute(DRIVER + f"\n__tnn_serve.serve = __tnn_install({str(rpc)!r})\n", timeout=60)
        namespace: dict = {"__name__": "__main__"}
        for name in api:
            namespace[name] = RemoteObject(bridge, {"name": name})
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            meta = nbgrader_meta(cell)
            if is_test_cell(cell):
                results[meta["grade_id"]] = (
                    _run_local(cell.source, namespace) if not bridge.dead else
                    Verdict(Outcome.NOT_RUN, bridge.dead))
                continue
            student_side = meta.get("solution") or not meta.get("locked") or used_names(cell.source) & api
            if not bridge.dead:
                try:
                    bridge.execute(cell.source)
                except StudentCodeError:
                    pass  # recorded in bridge.dead, or a timeout of this cell: later tests say so
            if student_side:
                for name in defined_names(cell.source) - set(namespace):
                    namespace[name] = RemoteObject(bridge, {"name": name})
            else:
                _run_local(cell.source, namespace)
    finally:
        with contextlib.suppress(Exception):
            kc.stop_channels()
        with contextlib.suppress(Exception):
            km.shutdown_kernel(now=True)
    return results
