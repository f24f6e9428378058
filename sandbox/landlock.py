"""Files a job's process may write: its own directory only (Linux Landlock, no privilege).

Behind Deno's permissions, code that got past them could otherwise write whatever its
user can: as a worker that is not root, the worker's own files, the DENO_DIR template
every later job copies, and other jobs' directories. Landlock lets a process, before it
execs, give up file access for itself and whatever it starts: here everything stays
readable and executable, and only the job's directory stays writable. Files already open
(stdin, stdout, stderr) are not affected.
"""

import ctypes
import os
import struct

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # the same on every arch
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
V1_ALL = (1 << 13) - 1  # execute ... make_sym: every file right of the first ABI
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
READ_ONLY = EXECUTE | READ_FILE | READ_DIR
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here, not in children between fork and exec


def abi() -> int:
    """Landlock's ABI version on this kernel; 0 where it has none (or forbids it)."""
    version = _LIBC.syscall(SYS_CREATE_RULESET, None, 0, CREATE_RULESET_VERSION)
    return max(version, 0)


def _handled(version: int) -> int:
    return V1_ALL | (REFER if version >= 2 else 0) | (TRUNCATE if version >= 3 else 0)


def restrict_writes_to(directory: str, version: int) -> bool:
    """In a child between fork and exec: from now on it (and what it execs) may write
    only beneath `directory`; it may read and execute anything it could before."""
    handled = _handled(version)
    attr = ctypes.create_string_buffer(struct.pack("Q", handled))
    ruleset = _LIBC.syscall(SYS_CREATE_RULESET, attr, len(attr.raw), 0)
    if ruleset < 0:
        return False
    try:
        rules = (("/", READ_ONLY), (directory, handled))
        for path, allowed in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                beneath = ctypes.create_string_buffer(struct.pack("=Qi", allowed, fd))
                if _LIBC.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, beneath, 0) != 0:
                    return False
            finally:
                os.close(fd)
        if _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        return _LIBC.syscall(SYS_RESTRICT_SELF, ruleset, 0) == 0
    finally:
        os.close(ruleset)
