"""Run a module as a child process that dies with its parent.

``python -m services.common.child <parent pid> <module> [args...]`` asks Linux
to send SIGKILL to this process when the thread that started it goes away
(``PR_SET_PDEATHSIG``), then runs ``<module>`` as ``__main__``. The demo stack
and the chaos run start their parts in their own sessions (so Ctrl-C reaches
only the parent, which stops them in order); without this, a parent killed
with SIGKILL left every part running. Elsewhere than Linux the module simply runs.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m services.common.child <parent pid> <module> [args...]")
    parent, module, args = int(argv[0]), argv[1], argv[2:]
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # The parent may have died before the request above took effect.
        if os.getppid() != parent:
            raise SystemExit(f"parent {parent} is gone; not starting {module}")
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
