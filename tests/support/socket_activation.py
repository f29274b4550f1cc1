"""Exec a command with an already-bound listening socket handed over as systemd socket activation.

    python socket_activation.py FD COMMAND [ARGS...]

The socket open at FD becomes fd 3 with LISTEN_FDS=1 and LISTEN_PID set to this process's id, which
`exec` keeps: gunicorn (the lean server) then serves on that socket instead of binding its own. The
caller bound it to port 0, so the OS picked a port nobody else can hold.
"""

from __future__ import annotations

import os
import sys

FIRST_LISTEN_FD = 3  # systemd's SD_LISTEN_FDS_START


def main(argv: list[str]) -> None:
    fd = int(argv[0])
    if fd != FIRST_LISTEN_FD:
        os.dup2(fd, FIRST_LISTEN_FD)  # the copy is inheritable
        os.close(fd)
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
