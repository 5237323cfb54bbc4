"""The golden examples under schemas/examples, loaded once for every contract test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
EXAMPLES = SCHEMAS / "examples"


def load_examples() -> dict[str, dict[str, Any]]:
    """'<type>.v<version>' -> the example envelope as JSON."""
    return {
        p.name.removesuffix(".json"): orjson.loads(p.read_bytes())
        for p in sorted(EXAMPLES.glob("*.json"))
    }
