"""Docker's default seccomp profile, loaded through libseccomp (ctypes) just before a step's command starts.

The rules follow moby's `profiles/seccomp/default.json` for a process holding Docker's default capabilities: an
allow-list, EPERM for everything else; `clone` only without namespace flags and `clone3` answered ENOSYS (so libc
falls back to `clone`, whose flags can be checked); no `mount`, `unshare`, `setns`, `keyctl`, `bpf`, `ptrace` of
other processes' memory beyond what the list names; `socket` for every family but AF_VSOCK; `personality` only for
the harmless personas. As Docker 25 does, the io_uring calls are refused. `no_new_privs` stays off, as in Docker, so
setuid programs such as `su` keep working; the filter is loaded while the process still holds CAP_SYS_ADMIN.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
from dataclasses import dataclass

from ..errors import ExecError

__all__ = [
    "PreparedFilter",
    "SeccompRule",
    "check_bpf",
    "default_filter_identity",
    "default_rules",
    "load_bpf",
    "prepare_default_filter",
]

_ALLOWED_NAMES = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime clock_adjtime64
clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close
close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat
faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl
fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64
fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid
getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid
getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get
ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64
mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
_newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll
ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg
sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget
shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs
statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink
unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev process_vm_readv
process_vm_writev ptrace chroot
"""

_ARCH_ALLOWED = {
    "x86_64": ("arch_prctl", "modify_ldt"),
    "aarch64": ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"),
    "ppc64le": ("sync_file_range2", "swapcontext"),
    "s390x": ("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"),
    "riscv64": ("riscv_flush_icache",),
}
# 32-bit programs run on these hosts too: Docker's filter covers their system call tables as well.
_SUB_ARCHITECTURES = {"x86_64": ("x86", "x32"), "aarch64": ("arm",), "s390x": ("s390",)}

_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_AF_VSOCK = 40
_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

_ACT_ALLOW = 0x7FFF0000
_ACT_ERRNO = 0x00050000
_CMP_NE = 1
_CMP_EQ = 4
_CMP_MASKED_EQ = 7
_FLTATR_CTL_NNP = 3
_NR_SCMP_ERROR = -1


@dataclass(frozen=True)
class SeccompRule:
    """`action` for `syscall` when every (argument index, comparison, value, second value) condition holds."""

    syscall: str
    action: int
    conditions: tuple[tuple[int, int, int, int], ...] = ()


def _errno_action(number: int) -> int:
    return _ACT_ERRNO | (number & 0xFFFF)


def default_rules(machine: str | None = None) -> tuple[SeccompRule, ...]:
    machine = machine or os.uname().machine
    rules = [SeccompRule(name, _ACT_ALLOW) for name in (*_ALLOWED_NAMES.split(), *_ARCH_ALLOWED.get(machine, ()))]
    rules.append(SeccompRule("socket", _ACT_ALLOW, ((0, _CMP_NE, _AF_VSOCK, 0),)))
    rules.extend(SeccompRule("personality", _ACT_ALLOW, ((0, _CMP_EQ, persona, 0),)) for persona in _PERSONAS)
    flags_argument = 1 if machine == "s390x" else 0
    rules.append(SeccompRule("clone", _ACT_ALLOW, ((flags_argument, _CMP_MASKED_EQ, _NAMESPACE_FLAGS, 0),)))
    rules.append(SeccompRule("clone3", _errno_action(errno.ENOSYS)))
    return tuple(rules)


class _ArgCompare(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_BPF_INSTRUCTION_BYTES = 8  # struct sock_filter
_BPF_MAXINSNS = 4096
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


def _libseccomp() -> ctypes.CDLL:
    try:
        library = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        raise ExecError(
            "cannot load libseccomp.so.2, which applies Docker's default seccomp profile to RUN steps: "
            "install libseccomp2 (apt-get install libseccomp2)"
        ) from None
    library.seccomp_init.restype = ctypes.c_void_p
    library.seccomp_init.argtypes = [ctypes.c_uint32]
    library.seccomp_release.argtypes = [ctypes.c_void_p]
    library.seccomp_load.argtypes = [ctypes.c_void_p]
    library.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    library.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    library.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    library.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    library.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    library.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    library.seccomp_version.restype = ctypes.POINTER(_Version)
    library.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCompare),
    ]
    return library


def _check(result: int, what: str) -> None:
    if result < 0:
        raise ExecError(f"seccomp: {what}: {errno.errorcode.get(-result, str(-result))}")


class PreparedFilter:
    """Docker's default filter, compiled once in the fork server, loaded in each step's init process.

    Prepared before any pivot_root: libseccomp must come from the host, never from the image being built."""

    def __init__(self) -> None:
        self._library = _libseccomp()
        context = self._library.seccomp_init(_errno_action(errno.EPERM))
        if not context:
            raise ExecError("seccomp: cannot create a filter")
        self._context: int = context
        _check(self._library.seccomp_attr_set(context, _FLTATR_CTL_NNP, 0), "no_new_privs off")
        for arch in _SUB_ARCHITECTURES.get(os.uname().machine, ()):
            token = self._library.seccomp_arch_resolve_name(arch.encode())
            if token:
                result = self._library.seccomp_arch_add(context, token)
                if result < 0 and -result != errno.EEXIST:
                    _check(result, f"add architecture {arch}")
        for rule in default_rules():
            self._add(rule)

    def _add(self, rule: SeccompRule) -> None:
        number = self._library.seccomp_syscall_resolve_name(rule.syscall.encode())
        if number == _NR_SCMP_ERROR:
            return  # not a system call of this architecture
        conditions = (_ArgCompare * max(1, len(rule.conditions)))(
            *(_ArgCompare(index, op, first, second) for index, op, first, second in rule.conditions)
        )
        _check(
            self._library.seccomp_rule_add_array(self._context, rule.action, number, len(rule.conditions), conditions),
            f"rule for {rule.syscall}",
        )

    def load(self) -> None:
        """Install the filter on the calling thread; it is inherited across fork and execve."""
        _check(self._library.seccomp_load(self._context), "load")

    def export_bpf(self) -> bytes:
        """The filter compiled to the classic BPF program the kernel runs (what `load` installs), for `load_bpf`."""
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            _check(self._library.seccomp_export_bpf(self._context, fd), "export")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)


_prepared: list[PreparedFilter] = []


def default_filter_identity() -> str:
    """A name for the default filter as this code and this libseccomp compile it: a compiled program kept under it
    (`export_bpf`) may be loaded instead of compiling again."""
    version = _libseccomp().seccomp_version().contents
    library = f"{version.major}.{version.minor}.{version.micro}"
    text = repr((library, os.uname().machine, _SUB_ARCHITECTURES.get(os.uname().machine), default_rules()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def check_bpf(program: bytes) -> None:
    """ExecError unless `program` has the shape of a classic BPF program the kernel accepts."""
    count, remainder = divmod(len(program), _BPF_INSTRUCTION_BYTES)
    if remainder or not 0 < count <= _BPF_MAXINSNS:
        raise ExecError(f"seccomp: not a BPF program ({len(program)} bytes)")


def load_bpf(program: bytes) -> None:
    """Install a program made by `PreparedFilter.export_bpf` on the calling thread, as `PreparedFilter.load` does
    (no_new_privs stays off: the caller must still hold CAP_SYS_ADMIN)."""
    check_bpf(program)
    instructions = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // _BPF_INSTRUCTION_BYTES, ctypes.addressof(instructions))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise ExecError(f"seccomp: load: {errno.errorcode.get(code, str(code))}")


def prepare_default_filter() -> PreparedFilter:
    """The process's one PreparedFilter, made on first call."""
    if not _prepared:
        _prepared.append(PreparedFilter())
    return _prepared[0]
