"""Who an item is about: identify() and match_contact() by table."""

from __future__ import annotations

from typing import Any

import pytest

from services.ingest.identities import Identity, Role, identify, match_contact

PHONE, OTHER_PHONE = "447911123456", "4915112345678"
BSUID, OTHER_BSUID, PARENT = "GB.13491208655302741918", "DE.20583719462019374650", "GB.ENT.1"
FULL = {"wa_id": PHONE, "user_id": BSUID, "parent_user_id": PARENT}

IDENTIFY: list[tuple[str, Role, dict[str, Any], list[dict[str, Any]], Identity]] = [
    (
        "status: nothing but recipient_id",
        "status",
        {"recipient_id": PHONE},
        [],
        Identity(PHONE, None, None),
    ),
    (
        "status: BSUIDs inside",
        "status",
        {"recipient_id": PHONE, "recipient_user_id": BSUID, "recipient_parent_user_id": PARENT},
        [],
        Identity(PHONE, BSUID, PARENT),
    ),
    (
        "status: older spelling user_id inside",
        "status",
        {"recipient_id": PHONE, "user_id": BSUID, "parent_user_id": PARENT},
        [],
        Identity(PHONE, BSUID, PARENT),
    ),
    (
        "status: BSUIDs beside, matched by wa_id",
        "status",
        {"recipient_id": PHONE},
        [{"wa_id": OTHER_PHONE, "user_id": OTHER_BSUID}, FULL],
        Identity(PHONE, BSUID, PARENT, FULL),
    ),
    (
        "status: inside wins over beside",
        "status",
        {"recipient_id": PHONE, "recipient_parent_user_id": "GB.ENT.inside"},
        [FULL],
        Identity(PHONE, BSUID, "GB.ENT.inside", FULL),
    ),
    (
        "status: no recipient_id, matched by BSUID, wa_id taken from the contact",
        "status",
        {"recipient_user_id": BSUID},
        [{"wa_id": OTHER_PHONE, "user_id": OTHER_BSUID}, FULL],
        Identity(PHONE, BSUID, PARENT, FULL),
    ),
    (
        "status: a contradicting contact at the same position is not taken",
        "status",
        {"recipient_id": PHONE},
        [{"wa_id": OTHER_PHONE, "user_id": OTHER_BSUID}],
        Identity(PHONE, None, None),
    ),
    (
        "status: a contact without identifiers at its position is taken",
        "status",
        {},
        [{"user_id": BSUID}],
        Identity(None, BSUID, None, {"user_id": BSUID}),
    ),
    (
        "message: BSUID only",
        "message",
        {"from_user_id": BSUID},
        [{"profile": {"username": "@ada"}, "user_id": BSUID, "parent_user_id": PARENT}],
        Identity(
            None,
            BSUID,
            PARENT,
            {"profile": {"username": "@ada"}, "user_id": BSUID, "parent_user_id": PARENT},
        ),
    ),
    (
        "message: from as a number",
        "message",
        {"from": 447911123456},
        [],
        Identity(PHONE, None, None),
    ),
    (
        "echo: to and to_user_id",
        "echo",
        {"to": PHONE, "to_user_id": BSUID},
        [FULL],
        Identity(PHONE, BSUID, PARENT, FULL),
    ),
    (
        "preference: BSUID inside, wa_id beside",
        "preference",
        {"user_id": BSUID},
        [FULL],
        Identity(PHONE, BSUID, PARENT, FULL),
    ),
    (
        "preference: empty strings are no identifiers",
        "preference",
        {"wa_id": "", "user_id": BSUID},
        [],
        Identity(None, BSUID, None),
    ),
]


@pytest.mark.parametrize(
    ("role", "item", "contacts", "expected"),
    [case[1:] for case in IDENTIFY],
    ids=[case[0] for case in IDENTIFY],
)
def test_identify(
    role: Role, item: dict[str, Any], contacts: list[dict[str, Any]], expected: Identity
) -> None:
    assert identify(item, role, contacts, 0, 1) == expected


@pytest.mark.parametrize(
    ("wa_id", "user_id", "index", "count", "expected"),
    [
        (PHONE, None, 0, 2, 1),  # by wa_id, wherever it is
        (None, OTHER_BSUID, 1, 2, 0),  # by BSUID, wherever it is
        (None, None, 1, 2, 1),  # nothing to match by: the same position
        (None, None, 0, 3, None),  # contacts and items do not pair one to one
        (OTHER_PHONE, None, 1, 2, 0),  # by wa_id, not by position
        ("15550001111", None, 0, 2, None),  # position, but the contact has another wa_id
    ],
)
def test_match_contact(
    wa_id: str | None, user_id: str | None, index: int, count: int, expected: int | None
) -> None:
    contacts = [{"wa_id": OTHER_PHONE, "user_id": OTHER_BSUID}, FULL]
    found = match_contact(contacts, wa_id, user_id, index, count)
    assert found is (None if expected is None else contacts[expected])
