"""Users named by wa_id, by business-scoped user id (BSUID), or by both: one stop, every key."""

from __future__ import annotations

from typing import Any

import pytest

from mmbus.contracts.envelope import Message
from mmbus.folds import evolve_recipient, recipient_keys
from services.sender.knowledge import Knowledge
from tests.projections import events as ev

BSUID = "US.13491208655302741918"


def _with(event: Message, **data: Any) -> Message:
    return event.model_copy(update={"data": event.data.model_copy(update=data)})


STOP_BY_PHONE = ev.preference("447911123456", "stop", 5)
STOP_BY_BOTH = _with(ev.preference("447911123456", "stop", 5), user_bsuid=BSUID)
STOP_BY_BSUID = ev.preference(BSUID, "stop", 5)
OPTED_OUT = ev.status(1, "failed", 6, pricing=None, errors=({"code": 131050, "title": "stopped"},))
OPTED_OUT_BSUID = _with(OPTED_OUT, recipient_id=None, recipient_user_id=BSUID)


@pytest.mark.parametrize(
    ("event", "keys"),
    [
        (STOP_BY_PHONE, ("447911123456",)),
        (STOP_BY_BOTH, ("447911123456", BSUID)),
        (STOP_BY_BSUID, (BSUID,)),
        (OPTED_OUT, (ev.USER,)),
        (OPTED_OUT_BSUID, (BSUID,)),
        (ev.click("t", 1), ()),
    ],
)
def test_every_id_the_event_names_its_user_by(event: Message, keys: tuple[str, ...]) -> None:
    assert recipient_keys(event) == keys


@pytest.mark.parametrize("event", [STOP_BY_BOTH, OPTED_OUT_BSUID, STOP_BY_BSUID])
def test_a_stop_is_found_under_each_key_with_that_key_as_its_user(event: Message) -> None:
    knowledge = Knowledge()
    knowledge.apply(event)
    assert set(knowledge.recipients) == set(recipient_keys(event))
    for key, state in knowledge.recipients.items():
        assert state.user_id == key
        assert state.stopped_marketing is True
    folded = evolve_recipient(None, event)
    assert folded is not None
    assert folded.user_id == recipient_keys(event)[0], "by default the event's first key"


def test_only_link_clicks_count_in_the_delivery_projection() -> None:
    from services.projections.projection import Projection
    from services.projections.specs import PROJECTIONS

    other_action = _with(ev.click("spring-cta", 2), action_type="catalog_view", click_id=None)
    live = Projection(PROJECTIONS.values())

    def digests() -> dict[str, str]:
        return {spec.name: live.digest(spec.kinds) for spec in live.specs}

    live.apply(ev.command(1, labels={"tracking_token": "spring-cta"}))
    before = digests()
    live.apply(ev.click("spring-cta", 1))
    counted = digests()
    assert counted["delivery"] != before["delivery"], "a link click is counted"
    live.apply(other_action)  # an older log's non-click user action, mixed in
    assert digests() == counted, "a user action that is not a link click changes nothing"
