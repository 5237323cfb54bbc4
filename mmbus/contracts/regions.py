"""Geographic rules from the source documents, shared by the sender and the simulator.

- Marketing messages to US recipients are blocked (error 131049, since 2025-04-01),
  on Cloud API and MM API alike.
- Cuba, Iran, North Korea and Syria cannot send or receive at all (platform-wide).
  Crimea, Donetsk and Luhansk are sanctioned too but share Ukraine's country code,
  so they cannot be told apart by number; the API remains the authority there.
"""

from __future__ import annotations

MARKETING_BLOCKED_REGIONS = frozenset({"US"})
SANCTIONED_REGIONS = frozenset({"CU", "IR", "KP", "SY"})
