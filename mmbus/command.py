"""The ``mmbus`` console script: the services' CLI, or one line saying how to install it.

The script is installed with the library, but the CLI starts services whose
dependencies come with the ``services`` extra. A producer or consumer team that
installed only the library gets an instruction, not a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from services.cli import main as cli_main
    except ModuleNotFoundError as exc:
        sys.stderr.write(
            f"mmbus: the command line needs the services ({exc.name} is not installed); "
            "install them with: pip install 'mmbus[services]'\n"
        )
        raise SystemExit(2) from None
    cli_main()
