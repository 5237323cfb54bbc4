"""Events derived from the same webhook content get the same id, every time."""

from __future__ import annotations

import subprocess
import sys
import uuid

import orjson
from hypothesis import given
from hypothesis import strategies as st

from mmbus.contracts.envelope import MMBUS_NAMESPACE, _uuid_text, derive_id, new_id

STATUS_IDENTITY = {"wamid": "wamid.HBgM", "status": "delivered", "timestamp": "1772442910"}


def test_same_content_same_id_regardless_of_key_order() -> None:
    reordered = dict(reversed(list(STATUS_IDENTITY.items())))
    assert derive_id("message.status", STATUS_IDENTITY) == derive_id("message.status", reordered)


def test_different_content_or_type_gives_different_ids() -> None:
    base = derive_id("message.status", STATUS_IDENTITY)
    assert derive_id("message.status", {**STATUS_IDENTITY, "status": "read"}) != base
    assert derive_id("marketing.link_clicked", STATUS_IDENTITY) != base


def test_ids_are_stable_across_processes() -> None:
    # No per-process salt (unlike hash()): a replay on another machine derives the same ids.
    code = (
        "from mmbus.contracts.envelope import derive_id;"
        f"print(derive_id('message.status', {STATUS_IDENTITY!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == derive_id("message.status", STATUS_IDENTITY)


def test_derivation_never_changes() -> None:
    # Golden value: ids already in the log must be re-derivable by every later release.
    assert derive_id("message.status", STATUS_IDENTITY) == "41fc6fb9-b689-5629-8978-3b36e7674c26"


@given(
    st.text(max_size=40), st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4)
)
def test_derived_ids_are_exactly_uuid5(message_type: str, identity: dict[str, str]) -> None:
    canonical = orjson.dumps(identity, option=orjson.OPT_SORT_KEYS).decode()
    expected = uuid.uuid5(MMBUS_NAMESPACE, f"{message_type}\n{canonical}")
    assert derive_id(message_type, identity) == str(expected)


@given(st.binary(min_size=16, max_size=16), st.sampled_from([4, 5]))
def test_uuid_text_is_the_uuid_modules(raw: bytes, version: int) -> None:
    assert _uuid_text(raw, version) == str(uuid.UUID(bytes=raw, version=version))


def test_new_ids_are_random_version_4_uuids() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
