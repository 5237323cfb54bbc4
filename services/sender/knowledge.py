"""What the sender knows of WABAs, templates and recipients: the shared folds, by event type.

The folds themselves are the library's (:mod:`mmbus.folds`), the very ones the
projections audit with; this view only keeps their states by key and chooses
the fold by the event's type. The feed that fills it from Kafka is
:mod:`services.sender.knowledge_feed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mmbus.contracts.commands import SendTemplateData
from mmbus.contracts.envelope import Message
from mmbus.contracts.webhook_events import (
    AccountOnboardingObserved,
    AccountUpdated,
    MessageStatus,
    TemplateCategoryChanged,
    TemplateCategoryObserved,
    TemplateQualityChanged,
    TemplateStatusChanged,
    UserMarketingPreferenceChanged,
)
from mmbus.folds import (
    RecipientState,
    TemplateState,
    WabaState,
    evolve_recipient,
    evolve_template,
    evolve_waba,
    recipient_keys,
    template_key,
)

WABA_EVENTS = (AccountUpdated, AccountOnboardingObserved)
TEMPLATE_EVENTS = (
    TemplateStatusChanged,
    TemplateCategoryChanged,
    TemplateQualityChanged,
    TemplateCategoryObserved,
)
RECIPIENT_EVENTS = (UserMarketingPreferenceChanged, MessageStatus)
# How stale a template's last use may be kept: nothing near the 7-day dormancy rule.
FRESH_ENOUGH = timedelta(minutes=1)


@dataclass
class Knowledge:
    wabas: dict[str, WabaState] = field(default_factory=dict)
    templates: dict[str, TemplateState] = field(default_factory=dict)
    recipients: dict[str, RecipientState] = field(default_factory=dict)

    def waba(self, data: SendTemplateData) -> WabaState | None:
        return self.wabas.get(data.waba_id)

    def template(self, data: SendTemplateData) -> TemplateState | None:
        return self.templates.get(template_key(data.waba_id, data.template.name))

    def recipient(self, data: SendTemplateData) -> RecipientState | None:
        return self.recipients.get(data.to)

    def apply(self, event: Message) -> None:
        if isinstance(event, WABA_EVENTS):
            waba_id = event.data.waba_id
            state = evolve_waba(self.wabas.get(waba_id), event)
            if state is not None:
                self.wabas[waba_id] = state
        elif isinstance(event, TEMPLATE_EVENTS):
            key = template_key(event.data.waba_id, event.data.name or "")
            tstate = evolve_template(self.templates.get(key), event)
            if tstate is not None:
                self.templates[key] = tstate
        elif isinstance(event, RECIPIENT_EVENTS):
            for user in recipient_keys(event):
                rstate = evolve_recipient(self.recipients.get(user), event, user)
                if rstate is not None:
                    self.recipients[user] = rstate

    def template_used(self, data: SendTemplateData, now: datetime) -> None:
        """A send went out: the template is no longer dormant (the 7-day sync rule)."""
        template = data.template
        key = template_key(data.waba_id, template.name)
        current = self.templates.get(key)
        if current is None:
            self.templates[key] = TemplateState(data.waba_id, template.name, last_used_at=now)
            return
        last = current.last_used_at
        if last is not None and timedelta(0) <= now - last < FRESH_ENOUGH:
            # The rule counts days; a use seconds ago says the same. Every send of a
            # campaign rebuilt the template's state before (a frozen dataclass: about
            # 3 µs), for nothing.
            return
        # ``dataclasses.replace(current, last_used_at=now)``, once per send: replace looks
        # the fields up and checks each every time. A frozen dataclass's __dict__ holds its
        # fields; one that is not an __init__ argument would make this raise, not drop it.
        fields = current.__dict__.copy()
        fields["last_used_at"] = now
        self.templates[key] = TemplateState(**fields)
