"""Who a status, an inbound message or a preference is about: the user's wa_id and
business-scoped user ids (BSUID, parent BSUID), wherever the webhook carried them.

Meta puts them inside the item (``recipient_user_id`` in a status, ``from_user_id`` in
a message, ``to_user_id`` in an echo, ``user_id`` in a preference; older and newer
spellings both seen), or beside
it in ``value.contacts[]`` (``wa_id``, ``user_id``, ``parent_user_id``). A contact is
the item's when an identifier they both carry is equal; failing that, the contact at
the item's position when contacts and items pair one to one (one status, one contact:
Meta's usual shape). A contact that contradicts the item (another wa_id or BSUID) is
never taken. What the item says wins over its contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from services.ingest.normalize_base import Json, text

Role = Literal["status", "message", "echo", "preference"]

# role -> the item's keys for (wa_id, BSUID, parent BSUID), first found wins.
ITEM_KEYS: dict[Role, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "status": (
        ("recipient_id",),
        ("recipient_user_id", "user_id"),
        ("recipient_parent_user_id", "parent_user_id"),
    ),
    "message": (
        ("from",),
        ("from_user_id", "user_id"),
        ("from_parent_user_id", "parent_user_id"),
    ),
    "echo": (("to",), ("to_user_id",), ("to_parent_user_id",)),
    "preference": (("wa_id",), ("user_id",), ("parent_user_id",)),
}


@dataclass(frozen=True)
class Identity:
    wa_id: str | None = None
    user_id: str | None = None
    parent_user_id: str | None = None
    contact: Json | None = None


def _first(item: Json, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        found = text(item.get(key))
        if found:
            return found
    return None


def _compatible(wa_id: str | None, user_id: str | None, contact: Json) -> bool:
    """No identifier that both carry differs."""
    theirs = (text(contact.get("wa_id")), text(contact.get("user_id")))
    return all(
        a is None or b is None or a == b for a, b in zip((wa_id, user_id), theirs, strict=True)
    )


def match_contact(
    contacts: list[Json], wa_id: str | None, user_id: str | None, index: int, count: int
) -> Json | None:
    """The contacts[] entry of the item at ``index`` of ``count`` items, or None."""
    for contact in contacts:
        same_wa = wa_id is not None and text(contact.get("wa_id")) == wa_id
        same_user = user_id is not None and text(contact.get("user_id")) == user_id
        if (same_wa or same_user) and _compatible(wa_id, user_id, contact):
            return contact
    if len(contacts) == count and 0 <= index < count:
        positional = contacts[index]
        if _compatible(wa_id, user_id, positional):
            return positional
    return None


def identify(item: Json, role: Role, contacts: list[Json], index: int, count: int) -> Identity:
    """The item's user, completed from its contact."""
    wa_keys, user_keys, parent_keys = ITEM_KEYS[role]
    wa_id, user_id = _first(item, wa_keys), _first(item, user_keys)
    parent = _first(item, parent_keys)
    contact = match_contact(contacts, wa_id, user_id, index, count)
    if contact is None:
        return Identity(wa_id, user_id, parent)
    return Identity(
        wa_id=wa_id or text(contact.get("wa_id")),
        user_id=user_id or text(contact.get("user_id")),
        parent_user_id=parent or text(contact.get("parent_user_id")),
        contact=contact,
    )
