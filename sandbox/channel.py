"""The frame channel: a FIFO only the harness can write.

The harness opens it at start-up, then revokes every write permission before any
user code exists (see harness.js), so stdout and stderr, which user code can
write, carry nothing the runner trusts.
"""

import contextlib
import fcntl
import os
from pathlib import Path

CHANNEL = "frames"  # relative to the process's working directory, as harness.js opens it
CHANNEL_BUFFER_BYTES = 1024 * 1024
F_SETPIPE_SZ = 1031


def open_channel(directory: Path, owner: tuple[int, int] | None) -> int:
    """Create the frame FIFO in `directory` and open it for reading, non-blocking.

    Opened read-write, so the harness's open never waits for a reader and a read
    never sees EOF: the process's end is learnt from its stderr and exit status.
    """
    path = directory / CHANNEL
    os.mkfifo(path, 0o600)
    if owner is not None:
        os.chown(path, *owner)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # fewer wake-ups for large results
        fcntl.fcntl(fd, F_SETPIPE_SZ, CHANNEL_BUFFER_BYTES)
    return fd
