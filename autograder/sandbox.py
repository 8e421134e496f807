"""Run student notebook kernels in a bubblewrap sandbox.

The kernel of a submission sees a file system built from an allow-list: the system (/usr,
/etc), the Python installation and virtual environment, the `nnkit` package, a private /tmp,
and read-write only its own scratch folder (a copy of the submission) and the folder of its
connection sockets. Nothing else exists for it: not `solutions/`, not the gradebook, not the
grader's files, not other students' submissions. It has no network (its own empty network
namespace, loopback only), its own PID namespace, a non-root uid of its own, and limits on CPU
time, memory, processes and file size.

The kernel speaks to nbgrader over ZeroMQ IPC sockets (Unix socket files in a bind-mounted
folder), which work across the network namespace; TCP to the grader would not.
"""

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager, KernelManager
from traitlets import Integer, Unicode
from traitlets.config import LoggingConfigurable

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 900
    memory_bytes: int = 6 * 1024**3      # address space: torch maps a lot before it allocates
    processes: int = 256                  # threads count too (BLAS, torch)
    file_bytes: int = 64 * 1024**2
    tmp_bytes: int = 256 * 1024**2
    open_files: int = 1024


def _python_paths() -> list[Path]:
    """What the kernel must be able to read to run Python with the course's packages."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix)}
    import nnkit  # the package may be an editable install that points into the repository

    paths.add(Path(nnkit.__file__).resolve().parent)
    return sorted(paths)


def bwrap_argv(command: list[str], *, cwd: Path, writable: list[Path], uid: int, limits: Limits,
               env: dict[str, str]) -> list[str]:
    """The full command line that runs ``command`` inside the sandbox."""
    argv = [shutil.which("bwrap") or "bwrap",
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv",
            "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            argv += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            argv += ["--ro-bind", str(target), str(target)]
    argv += ["--dev", "/dev", "--proc", "/proc",
             "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    binds = [("--ro-bind", p) for p in _python_paths()] + [("--bind", p) for p in writable]
    # bwrap creates missing parent folders as 0700 root: make them traversable explicitly.
    parents = sorted({a for _, p in binds for a in Path(p).parents
                      if a not in (Path("/"), Path("/tmp"), Path("/usr"), Path("/etc"))},
                     key=lambda a: len(a.parts))
    for parent in parents:
        argv += ["--perms", "0755", "--dir", str(parent)]
    for kind, path in binds:
        argv += [kind, str(path), str(path)]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    # Root inside bwrap may only change its uid (setpriv); every other capability is dropped
    # before student code runs, and the limits apply to the new uid's processes.
    argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--chdir", str(cwd), "--",
             shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
             "--inh-caps=-all", "--bounding-set=-all", "--",
             shutil.which("prlimit") or "prlimit",
             f"--cpu={limits.cpu_seconds}", f"--as={limits.memory_bytes}",
             f"--nproc={limits.processes}", f"--fsize={limits.file_bytes}",
             f"--nofile={limits.open_files}", "--core=0", "--"]
    return argv + command


def kernel_env(home: str = "/tmp") -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "PYTHONNOUSERSITE": "1",
        "NNKIT_CACHE": "/tmp/nnkit-cache",
        "NNKIT_DEVICE": "cpu",
        # One thread per kernel: parallel jobs share the cores, and oversubscribed BLAS and
        # torch threads made training ten times slower on a busy 2-core machine.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


@functools.lru_cache(maxsize=1)
def check() -> str | None:
    """``None`` when the sandbox works here, else why it does not."""
    if os.name != "posix":
        return "the sandbox needs Linux"
    for tool in ("bwrap", "setpriv", "prlimit"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: apt-get install bubblewrap util-linux)"
    if os.geteuid() != 0:
        return "the grader must run as root to give each kernel a uid of its own"
    with tempfile.TemporaryDirectory(prefix="tnn-probe-") as tmp:
        os.chmod(tmp, 0o777)
        argv = bwrap_argv([sys.executable, "-c", "import os, socket, numpy, nnkit; "
                           "socket.create_connection(('192.0.2.1', 9), timeout=1)"],
                          cwd=Path(tmp), writable=[Path(tmp)], uid=65534, limits=Limits(),
                          env=kernel_env())
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if "Network is unreachable" not in proc.stderr and "OSError" not in proc.stderr:
            return f"bubblewrap did not start a network-less Python: {proc.stderr.strip()[-300:]}"
    return None


class _Sandboxed(LoggingConfigurable):
    """Kernel-manager behaviour: the kernel starts inside the sandbox, over IPC sockets."""

    runtime_dir = Unicode("", help="folder for the connection file and sockets").tag(config=True)
    sandbox_uid = Integer(65534, help="uid the kernel runs as").tag(config=True)
    cpu_seconds = Integer(Limits.cpu_seconds).tag(config=True)
    memory_bytes = Integer(Limits.memory_bytes).tag(config=True)
    processes = Integer(Limits.processes).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        runtime = Path(self.runtime_dir or tempfile.mkdtemp(prefix="tnn-"))
        runtime.mkdir(parents=True, exist_ok=True)
        os.chmod(runtime, 0o777)
        self.runtime_dir = str(runtime)
        self.transport = "ipc"
        self.ip = str(runtime / "k")
        self.connection_file = str(runtime / "kernel.json")
        # A signal to the launched process would reach bwrap, not the kernel inside: ask the
        # kernel to interrupt itself with a control message instead.
        self.kernel_spec.interrupt_mode = "message"

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        # The kernel runs under another uid and must read its own connection file.
        os.chmod(self.connection_file, 0o644)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        cwd = Path(kw.get("cwd") or os.getcwd()).resolve()
        limits = Limits(cpu_seconds=self.cpu_seconds, memory_bytes=self.memory_bytes,
                        processes=self.processes)
        kw["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        # What a kernel prints outside its cells (start-up notes, crashes) is not the grader's output.
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL
        wrapped = bwrap_argv(list(kernel_cmd), cwd=cwd, writable=[cwd, Path(self.runtime_dir)],
                             uid=self.sandbox_uid, limits=limits, env=kernel_env())
        return await super()._async_launch_kernel(wrapped, **kw)


class SandboxedKernelManager(_Sandboxed, AsyncKernelManager):
    """For nbgrader's (asynchronous) notebook execution."""


class SandboxedBlockingKernelManager(_Sandboxed, KernelManager):
    """For the trusted re-check, which drives the kernel step by step."""
