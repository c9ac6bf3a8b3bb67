"""An OS boundary around a worker process: bubblewrap namespaces, a read-only mount policy and a
small seccomp filter, checked by the kernel rather than by anything in the worker's Python.

What it guarantees, with `bwrap` (every property is probed once per process, see `detect_boundary`):

- `read_only_fs`: the host's whole filesystem is visible read-only (`--ro-bind / /`, so candidate
  files anywhere stay readable); the only writable host paths are the directories given to `wrap`.
  /dev is a private, read-only tmpfs holding null/zero/random/tty and, for a GPU, the device nodes
  (/dev/nvidia*, /dev/dri, /dev/kfd); /dev/shm a private tmpfs capped at `SHM_BYTES`; /run an empty
  read-only tmpfs (hides the host daemons' sockets); /proc the sandbox's own, read-only (bwrap
  leaves /proc/sys writable, and a root without capabilities can still set most sysctls); /sys
  read-only.
  Private mounts vanish with the sandbox, so nothing written there outlives it.
- `no_network`: a network namespace of its own, holding only a loopback with nothing listening;
  abstract unix sockets are per namespace too.
- `no_unix_sockets`: seccomp refuses `socket(AF_UNIX, ...)`, so pathname sockets in the read-only
  tree (tmux, ssh-agent, docker, systemd) cannot be dialled. Inherited sockets and `socketpair`
  keep working.
- `pid_namespace`: the worker sees no process but its own, and when the worker exits the namespace's
  init (bwrap) exits and the kernel kills every process left in the namespace, double-forked and
  `setsid` ones included; its parent's `wait` returns only after they are all reaped.
- `dies_with_parent`: `--die-with-parent` (PR_SET_PDEATHSIG): if the harness dies, so does the
  sandbox.
- `ipc_namespace`: SysV IPC and POSIX message queues of its own (and a private /dev/shm).
- `no_capabilities`: run as root, bwrap would keep every capability (and a root with CAP_SYS_ADMIN
  could remount / read-write); `--cap-drop ALL` plus no_new_privs leave none, even across exec.
- `no_ptrace`: seccomp refuses ptrace, process_vm_readv/writev and pidfd_getfd (other processes'
  memory, the evaluator's when there is no PID namespace) and the kernel keyrings (add_key,
  request_key, keyctl: a store that outlives processes).
- `no_new_namespaces`: seccomp refuses unshare, setns and clone with a CLONE_NEW* flag (clone3,
  whose flags it cannot read, gets ENOSYS and glibc falls back to clone): nothing inside can make
  a user namespace to regain capabilities in, nor leave the sandbox's network namespace.

What it does not: limit CPU, memory, disk use in the writable dirs or GPU use (the harness watches
memory and time); hide anything readable (reads are allowed everywhere); stop a worker without a
PID namespace from seeing and signalling other processes of its uid; isolate the GPU itself
(device memory and contexts are the driver's business).

Without the PID namespace (legacy CUDA IPC handles are reported not to open across PID
namespaces, so the evaluator's arena may need it off on a GPU: `detect_boundary(pid_namespace=
False)`), a double-forked child outlives the worker's exit. It cannot leave the sandbox's network
namespace, so `kill_tree(pid, namespace=namespace_of(pid))`, the namespace read while the worker
runs, still kills it: nothing outlives the kill, though it can outlive a worker that exits by
itself until the harness kills the tree.

Why bubblewrap: one small maintained binary (used by Flatpak, packaged everywhere as `bubblewrap`)
gives namespaces (mount, network, PID, IPC), the mount policy, die-with-parent, dropped
capabilities and a seccomp loader in one exec, unprivileged through user namespaces or as root.
Landlock restricts writes (kernel >= 5.13; TCP only from 6.7) but does not isolate processes
at all, and has no binding in the standard library (raw syscalls through
ctypes). seccomp alone filters syscalls, not paths: it cannot tell a write to the worker's
directory from a write anywhere else. So bwrap draws the boundary, and a small seccomp filter,
handed to bwrap's own `--seccomp`, closes what a mount policy leaves open (unix sockets, other
processes' memory, new namespaces). Without bwrap the fallback is util-linux `unshare` (network,
PID and IPC namespaces, kill-child, capabilities dropped through `setpriv`; the filesystem stays
writable, no seccomp); without either, nothing, and `reason` says so.
"""

from __future__ import annotations

import functools
import glob
import os
import platform
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

Tool = Literal["bwrap", "unshare", "none"]

PROPERTIES = (
    "read_only_fs",
    "no_network",
    "no_unix_sockets",
    "pid_namespace",
    "dies_with_parent",
    "ipc_namespace",
    "no_capabilities",
    "no_ptrace",
    "no_new_namespaces",
)
_SECCOMP_PROPERTIES = frozenset({"no_unix_sockets", "no_ptrace", "no_new_namespaces"})
ALL_PROPERTIES = frozenset(PROPERTIES)

SHM_BYTES = 64 << 20  # the private /dev/shm; tmpfs pages are not in the worker's RSS, so keep it small
GPU_NODES = ("/dev/nvidia*", "/dev/nvidia-caps", "/dev/dri", "/dev/kfd")


@dataclass(frozen=True)
class Boundary:
    """Which tool draws the boundary and what it was seen to guarantee (`properties`); `reason`
    says why it is weaker than all of `ALL_PROPERTIES`, when it is."""

    tool: Tool
    properties: frozenset[str] = frozenset()
    reason: str = ""
    executable: str | None = None
    pid_namespace: bool = True  # asked for; `properties` says whether it holds
    ipc_namespace: bool = True
    seccomp: bool = True

    @property
    def complete(self) -> bool:
        return self.properties >= ALL_PROPERTIES

    def describe(self) -> str:
        missing = sorted(ALL_PROPERTIES - self.properties)
        text = f"{self.tool}: {', '.join(p for p in PROPERTIES if p in self.properties) or 'no isolation'}"
        if missing:
            text += f"; missing {', '.join(missing)}"
        return text + (f" ({self.reason})" if self.reason else "")


@dataclass
class Jailed:
    """The command to run in place of the original, and the fds `Popen(pass_fds=...)` must pass
    (the caller's, plus the seccomp program's). `close()` once the process has started."""

    argv: list[str]
    pass_fds: tuple[int, ...]
    boundary: Boundary
    _own_fds: list[int] = field(default_factory=list, repr=False)

    def close(self) -> None:
        for fd in self._own_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._own_fds = []

    def __enter__(self) -> Jailed:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def env_for(writable_dir: str | os.PathLike) -> dict[str, str]:
    """Environment overrides that point every cache and temp location the worker's libraries know
    of into its writable directory (everything else is read-only inside the boundary)."""
    d = Path(writable_dir)
    cache = d / ".cache"
    return {
        "HOME": str(d),
        "TMPDIR": str(d),
        "TMP": str(d),
        "TEMP": str(d),
        "XDG_CACHE_HOME": str(cache),
        "XDG_CONFIG_HOME": str(d / ".config"),
        "XDG_DATA_HOME": str(d / ".local" / "share"),
        "XDG_RUNTIME_DIR": str(d),
        "TRITON_HOME": str(d),
        "TRITON_CACHE_DIR": str(cache / "triton"),
        "TRITON_DUMP_DIR": str(cache / "triton-dump"),
        "TRITON_OVERRIDE_DIR": str(cache / "triton-override"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
        "TORCH_HOME": str(cache / "torch"),
        "TORCH_EXTENSIONS_DIR": str(cache / "torch_extensions"),
        "CUDA_CACHE_PATH": str(cache / "nv"),  # the driver's PTX JIT cache, ~/.nv by default
        "TILELANG_CACHE_DIR": str(cache / "tilelang"),
        "MPLCONFIGDIR": str(cache / "matplotlib"),
    }


# --- the seccomp program -----------------------------------------------------------------------

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_DENIED = {  # syscall numbers refused with EPERM, per architecture
    "x86_64": {
        "ptrace": 101,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "pidfd_getfd": 438,
        "add_key": 248,
        "request_key": 249,
        "keyctl": 250,
        "unshare": 272,
        "setns": 308,
    },
    "aarch64": {
        "ptrace": 117,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "pidfd_getfd": 438,
        "add_key": 217,
        "request_key": 218,
        "keyctl": 219,
        "unshare": 97,
        "setns": 268,
    },
}
_SOCKET = {"x86_64": 41, "aarch64": 198}
_CLONE = {"x86_64": 56, "aarch64": 220}  # flags are the first argument on both
_CLONE3 = 435  # its flags sit in a struct seccomp cannot read: ENOSYS, and glibc falls back to clone
_AF_UNIX = 1
_CLONE_NEW_MASK = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_EPERM, _ENOSYS = 1, 38
_X32_SYSCALL_BIT = 0x40000000
# classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h)
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
# offsets in struct seccomp_data: nr, arch, instruction_pointer, args[6] (little-endian low words)
_NR, _ARCH, _ARG0_LO = 0, 4, 16


def seccomp_program(machine: str | None = None) -> bytes | None:
    """A classic-BPF seccomp filter (struct sock_filter[], as bwrap's --seccomp reads it). EPERM
    for: other architectures' syscalls (i386 through int 0x80, x32), the `_DENIED` calls,
    socket(AF_UNIX, ...), clone with a CLONE_NEW* flag; ENOSYS for clone3; the rest is allowed.
    Without new namespaces a process cannot leave the sandbox's network namespace, which is how
    `kill_tree` finds strays when the PID namespace is off. None for an architecture not known here."""
    machine = machine or platform.machine()
    if machine not in _AUDIT_ARCH:
        return None
    prog: list[tuple[int, int, str | int, str | int]] = []  # (code, k, jump if true, jump if false)
    labels: dict[str, int] = {}

    def op(code: int, k: int, jt: str | int = 0, jf: str | int = 0) -> None:
        prog.append((code, k, jt, jf))

    def label(name: str) -> None:
        labels[name] = len(prog)

    op(_LD_W_ABS, _ARCH)
    op(_JEQ_K, _AUDIT_ARCH[machine], 0, "deny")
    op(_LD_W_ABS, _NR)
    if machine == "x86_64":
        op(_JGE_K, _X32_SYSCALL_BIT, "deny", 0)
    for nr in sorted(_DENIED[machine].values()):
        op(_JEQ_K, nr, "deny", 0)
    op(_JEQ_K, _CLONE3, "enosys", 0)
    op(_JEQ_K, _SOCKET[machine], "socket", 0)
    op(_JEQ_K, _CLONE[machine], "clone", "allow")
    label("socket")
    op(_LD_W_ABS, _ARG0_LO)
    op(_JEQ_K, _AF_UNIX, "deny", "allow")
    label("clone")
    op(_LD_W_ABS, _ARG0_LO)
    op(_JSET_K, _CLONE_NEW_MASK, "deny", "allow")
    label("deny")
    op(_RET_K, _RET_ERRNO | _EPERM)
    label("enosys")
    op(_RET_K, _RET_ERRNO | _ENOSYS)
    label("allow")
    op(_RET_K, _RET_ALLOW)

    out = []
    for i, (code, k, jt, jf) in enumerate(prog):
        rel = [labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf)]
        assert all(0 <= r < 256 for r in rel), "BPF jumps are forward, within 255"
        out.append(struct.pack("<HBBI", code, rel[0], rel[1], k))
    return b"".join(out)


def _program_fd(program: bytes) -> int:
    fd = os.memfd_create("ksearch-seccomp")  # close-on-exec: Popen's pass_fds hands it to bwrap alone
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


# --- building the command ----------------------------------------------------------------------


def _gpu_nodes() -> list[str]:
    return sorted({p for pattern in GPU_NODES for p in glob.glob(pattern)})


def _bwrap_argv(
    b: Boundary, writable: Sequence[Path], device: str, chdir: Path, seccomp_fd: int | None
) -> list[str]:
    args = [b.executable or "bwrap", "--die-with-parent", "--new-session", "--unshare-net"]
    if b.pid_namespace:
        args.append("--unshare-pid")
    if b.ipc_namespace:
        args.append("--unshare-ipc")
    args += ["--ro-bind", "/", "/", "--dev", "/dev"]
    gpu_nodes = _gpu_nodes() if device != "cpu" else []
    for node in gpu_nodes:
        args += ["--dev-bind-try", node, node]
    if b.ipc_namespace:
        args += ["--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
    elif os.path.isdir("/dev/shm"):
        args += ["--bind", "/dev/shm", "/dev/shm"]  # host IPC, as `docker --ipc=host`: a hole, on request
    # bwrap covers /proc/sysrq-trigger, irq and bus but not /proc/sys, whose files a root without
    # capabilities may still write (hostname, vm.*, most of kernel.*): all of /proc read-only. The
    # CUDA driver does not start under a read-only /proc (cudaGetDeviceCount error 304, seen on an
    # H100 host), so with a GPU only /proc/sys is.
    args += ["--remount-ro", "/dev", "--proc", "/proc"]
    args += ["--ro-bind", "/proc/sys", "/proc/sys"] if gpu_nodes else ["--remount-ro", "/proc"]
    if os.path.isdir("/run") and not os.path.islink("/run"):
        args += ["--tmpfs", "/run", "--remount-ro", "/run"]
    for w in writable:
        args += ["--bind", str(w), str(w)]
    args += ["--chdir", str(chdir)]
    if os.geteuid() == 0:
        args += ["--cap-drop", "ALL"]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    return args + ["--"]


def _unshare_argv(b: Boundary) -> list[str]:
    args = [b.executable or "unshare", "--net", "--fork", "--kill-child"]
    if b.pid_namespace:
        args += ["--pid", "--mount-proc"]
    if b.ipc_namespace:
        args.append("--ipc")
    if os.geteuid() != 0:
        args += ["--user", "--map-root-user"]
    args.append("--")
    setpriv = shutil.which("setpriv")
    if setpriv:  # as root the child would keep every capability; clear them and the bounding set
        args += [
            setpriv,
            "--no-new-privs",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
    return args


def wrap(
    argv: Sequence[str],
    *,
    writable: Sequence[str | os.PathLike],
    pass_fds: Sequence[int] = (),
    device: str = "cpu",
    boundary: Boundary | None = None,
    chdir: str | os.PathLike | None = None,
) -> Jailed:
    """`argv` run inside the boundary (default: `detect_boundary()`), with `writable` the only
    writable host directories (they must exist) and `pass_fds` inherited as they are. `device`
    "cpu" binds no GPU device node; any other binds them all (CUDA_VISIBLE_DEVICES still picks).
    The environment passes through unchanged: add `env_for(writable[0])`. The working directory
    is `chdir`, default the first writable dir."""
    b = boundary or detect_boundary()
    dirs = [Path(w).resolve() for w in writable]
    for d in dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"writable dir {d} does not exist")
    cwd = Path(chdir).resolve() if chdir is not None else (dirs[0] if dirs else Path("/"))
    fds = tuple(pass_fds)
    if b.tool == "none":
        return Jailed(list(argv), fds, b)
    if b.tool == "unshare":
        return Jailed(_unshare_argv(b) + list(argv), fds, b)
    own: list[int] = []
    program = seccomp_program() if b.seccomp else None
    if program is not None:
        own.append(_program_fd(program))
    return Jailed(
        _bwrap_argv(b, dirs, device, cwd, own[0] if own else None) + list(argv), fds + tuple(own), b, own
    )


def spawn(
    argv: Sequence[str],
    *,
    writable: Sequence[str | os.PathLike],
    pass_fds: Sequence[int] = (),
    device: str = "cpu",
    boundary: Boundary | None = None,
    **popen_kwargs,
) -> subprocess.Popen:
    """`subprocess.Popen` of `argv` inside the boundary; `popen_kwargs` as Popen's (not pass_fds).
    The Popen's pid is the boundary tool's, not the worker's: see `tree_pids` and `kill_tree`."""
    jailed = wrap(
        argv,
        writable=writable,
        pass_fds=pass_fds,
        device=device,
        boundary=boundary,
        chdir=popen_kwargs.get("cwd"),
    )
    with jailed:
        return subprocess.Popen(jailed.argv, pass_fds=jailed.pass_fds, **popen_kwargs)


# --- probing -----------------------------------------------------------------------------------

# Runs inside the boundary: $1 is writable, $2 is not. Prints what it sees, one fact a line.
_PROBE = r"""
: > "$1/probe" && echo writable_ok
( : > "$2/probe" ) 2>/dev/null || echo outside_refused
for ns in net pid ipc; do echo "ns_$ns $(readlink /proc/self/ns/$ns)"; done
grep -E '^(CapEff|Seccomp):' /proc/self/status
"""


def _facts(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.strip().replace("\t", " ").partition(" ")
        out[key.rstrip(":")] = value.strip()
    return out


def probe(
    tool: Tool,
    *,
    pid_namespace: bool = True,
    ipc_namespace: bool = True,
    seccomp: bool = True,
    timeout_s: float = 20,
) -> Boundary:
    """Run a trivial shell script inside `tool`'s boundary and report the properties it actually
    saw; a Boundary of tool "none" with the reason when the tool is missing or fails."""
    if tool == "none":
        return Boundary("none", reason="no boundary requested")
    exe = shutil.which(tool)
    if exe is None:
        return Boundary("none", reason=f"{tool} is not installed")
    sh = shutil.which("sh") or "/bin/sh"
    b = Boundary(
        tool,
        executable=exe,
        pid_namespace=pid_namespace,
        ipc_namespace=ipc_namespace,
        seccomp=seccomp and tool == "bwrap" and seccomp_program() is not None,
    )
    with tempfile.TemporaryDirectory(prefix="ksearch-jail-") as tmp:
        inside, outside = Path(tmp, "in"), Path(tmp, "out")
        inside.mkdir()
        outside.mkdir()
        jailed = wrap([sh, "-c", _PROBE, "probe", str(inside), str(outside)], writable=[inside], boundary=b)
        try:
            with jailed:
                r = subprocess.run(
                    jailed.argv,
                    pass_fds=jailed.pass_fds,
                    capture_output=True,
                    text=True,
                    timeout=timeout_s,
                    stdin=subprocess.DEVNULL,
                )
        except (OSError, subprocess.TimeoutExpired) as e:
            return Boundary("none", reason=f"{tool} failed to start: {e}")
        if r.returncode != 0 or "writable_ok" not in r.stdout:
            return Boundary("none", reason=f"{tool} failed (exit {r.returncode}): {r.stderr.strip()[-300:]}")
    f = _facts(r.stdout)
    props = set()
    if "outside_refused" in f:
        props.add("read_only_fs")
    for ns, prop in (("net", "no_network"), ("pid", "pid_namespace"), ("ipc", "ipc_namespace")):
        if f.get(f"ns_{ns}") and f[f"ns_{ns}"] != os.readlink(f"/proc/self/ns/{ns}"):
            props.add(prop)
    if f.get("CapEff") and int(f["CapEff"], 16) == 0:
        props.add("no_capabilities")
    if f.get("Seccomp") == "2" and b.seccomp:
        props |= _SECCOMP_PROPERTIES
    props.add("dies_with_parent")  # bwrap --die-with-parent, unshare --kill-child
    missing = ALL_PROPERTIES - props
    reasons = []
    if "pid_namespace" in missing and not pid_namespace:
        reasons.append("PID namespace turned off")
    if "ipc_namespace" in missing and not ipc_namespace:
        reasons.append("IPC namespace turned off")
    if tool == "unshare":
        reasons.append(
            "bubblewrap is not installed: unshare gives namespaces but no read-only filesystem or seccomp"
        )
    elif _SECCOMP_PROPERTIES & missing:
        reasons.append(
            "seccomp filter " + ("turned off" if not seccomp else f"unavailable on {platform.machine()}")
        )
    other = missing - {"pid_namespace", "ipc_namespace", "read_only_fs"} - _SECCOMP_PROPERTIES
    if other or ("read_only_fs" in missing and tool == "bwrap"):
        reasons.append(f"not observed: {', '.join(sorted(other | ({'read_only_fs'} & missing)))}")
    return replace(b, properties=frozenset(props), reason="; ".join(reasons))


@functools.cache
def detect_boundary(
    *, pid_namespace: bool = True, ipc_namespace: bool = True, seccomp: bool = True
) -> Boundary:
    """The strongest boundary that works here, probed once per process and set of flags:
    bubblewrap, else util-linux unshare, else none (with the reasons)."""
    tried: list[str] = []
    for tool in ("bwrap", "unshare"):
        b = probe(tool, pid_namespace=pid_namespace, ipc_namespace=ipc_namespace, seccomp=seccomp)
        if b.tool != "none":
            if tried:
                b = replace(b, reason="; ".join([*tried, b.reason]))
            return b
        tried.append(b.reason)
    return Boundary("none", reason="; ".join(tried))
