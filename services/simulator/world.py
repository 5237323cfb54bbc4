"""The simulated world: portfolios, WABAs, numbers, templates, users who stopped marketing.

Seeded from a YAML or JSON file (or the admin API). Values are frozen; the
server swaps in a new ``World`` on every change, so a rule evaluation always
sees one consistent snapshot.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Category = Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
OnboardingStatus = Literal["NOT_ELIGIBLE", "ELIGIBLE", "ONBOARDED"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Portfolio(_Model):
    id: str
    name: str = ""


class Waba(_Model):
    id: str
    business_id: str
    onboarding_status: OnboardingStatus = "ELIGIBLE"
    disable_marketing_messages_on_cloud_api: bool = False


class PhoneNumber(_Model):
    id: str
    waba_id: str
    display_phone_number: str
    throughput_per_s: int = Field(default=80, ge=1, le=10_000)


class Template(_Model):
    waba_id: str
    name: str
    language: str
    category: Category
    status: str = "APPROVED"
    id: str = ""
    bid_spec: dict[str, Any] | None = None
    created_at: AwareDatetime = datetime(2026, 1, 1, tzinfo=UTC)
    # The tracking_token of this template's link clicks; unset: one token per message.
    tracking_token: str | None = None


class World(_Model):
    """Everything the rules read. Tokens are per world, not per number, as with a system user."""

    portfolios: tuple[Portfolio, ...] = ()
    wabas: tuple[Waba, ...] = ()
    phone_numbers: tuple[PhoneNumber, ...] = ()
    templates: tuple[Template, ...] = ()
    stopped_marketing: frozenset[str] = frozenset()
    access_tokens: frozenset[str] = frozenset({"sim-token"})
    d360_api_keys: dict[str, str] = Field(
        default_factory=dict, description="360dialog API key -> phone number id it sends for."
    )
    pair_limit_s: float = Field(default=6.0, description="One message per user per this many s.")

    def waba(self, waba_id: str) -> Waba | None:
        return next((w for w in self.wabas if w.id == waba_id), None)

    def number(self, phone_number_id: str) -> PhoneNumber | None:
        return next((n for n in self.phone_numbers if n.id == phone_number_id), None)

    def template(self, waba_id: str, name: str, language: str) -> Template | None:
        return next(
            (
                t
                for t in self.templates
                if t.waba_id == waba_id and t.name == name and t.language == language
            ),
            None,
        )

    def wabas_of(self, business_id: str) -> tuple[Waba, ...]:
        return tuple(w for w in self.wabas if w.business_id == business_id)

    def with_onboarded(self, business_id: str) -> World:
        """ToS signed for a portfolio: every WABA in it is onboarded (new ones inherit)."""
        wabas = tuple(
            w.model_copy(update={"onboarding_status": "ONBOARDED"})
            if w.business_id == business_id
            else w
            for w in self.wabas
        )
        return self.model_copy(update={"wabas": wabas})

    def with_waba(self, waba: Waba) -> World:
        return self.model_copy(
            update={"wabas": (*(w for w in self.wabas if w.id != waba.id), waba)}
        )

    def with_template(self, template: Template) -> World:
        rest = tuple(
            t
            for t in self.templates
            if (t.waba_id, t.name, t.language)
            != (template.waba_id, template.name, template.language)
        )
        return self.model_copy(update={"templates": (*rest, template)})

    def with_preference(self, user: str, stop: bool) -> World:
        users = self.stopped_marketing | {user} if stop else self.stopped_marketing - {user}
        return self.model_copy(update={"stopped_marketing": frozenset(users)})


def load_world(path: Path) -> World:
    """A seed file: YAML or JSON with the fields of :class:`World`."""
    text = path.read_text()
    raw = orjson.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return World.model_validate(raw or {})
