"""Where the local broker keeps its jars and instances: outside the repository."""

from __future__ import annotations

import os
from pathlib import Path


def mmbus_home() -> Path:
    """``$MMBUS_HOME``, else ``$XDG_CACHE_HOME/mmbus``, else ``~/.cache/mmbus``."""
    explicit = os.environ.get("MMBUS_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mmbus"


def distributions_dir() -> Path:
    """Jars are shared by every instance and every checkout of the project."""
    explicit = os.environ.get("MMBUS_KAFKA_DIST_DIR")
    return Path(explicit).expanduser() if explicit else mmbus_home() / "kafka-dist"


def brokers_dir() -> Path:
    return mmbus_home() / "brokers"
