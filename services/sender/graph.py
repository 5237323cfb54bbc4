"""Graph API and 360dialog calls, over the client chosen in :mod:`services.sender.http`."""

from __future__ import annotations

import time
from typing import Any

import orjson

from mmbus.contracts.commands import Provider
from mmbus.contracts.send_events import Endpoint
from services.sender.http import HttpClient, TransportFailure, http_client
from services.sender.outcomes import Result, Transport, classify
from services.sender.settings import SenderSettings


class GraphClient:
    """Sends messages and looks up WABAs and templates; turns answers into results."""

    def __init__(self, settings: SenderSettings, client: HttpClient | None = None) -> None:
        self._settings = settings
        self._http = client or http_client(settings)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _target(
        self, provider: Provider, phone_number_id: str, endpoint: Endpoint
    ) -> tuple[str, dict[str, str]]:
        s = self._settings
        if provider == "360dialog":
            key = s.d360_api_keys.get(phone_number_id)
            return f"{s.d360_base_url}/{endpoint}", {
                "D360-API-KEY": key.get_secret_value() if key else "",
            }
        return (
            f"{s.meta_base_url}/{s.meta_graph_version}/{phone_number_id}/{endpoint}",
            {"Authorization": f"Bearer {s.meta_access_token.get_secret_value()}"},
        )

    async def send(
        self, provider: Provider, phone_number_id: str, endpoint: Endpoint, body: dict[str, Any]
    ) -> tuple[Result, float]:
        """POST one message; returns the classified result and the seconds it took."""
        url, headers = self._target(provider, phone_number_id, endpoint)
        headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            status, content = await self._http.request(
                "POST", url, headers, body=orjson.dumps(body)
            )
        except TransportFailure as exc:
            return classify(Transport(exc.kind, sent=exc.sent)), time.perf_counter() - started
        try:
            parsed: Any = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            parsed = content[:500].decode(errors="replace")
        return classify(status, parsed), time.perf_counter() - started

    async def get_json(self, path: str, params: dict[str, str]) -> tuple[int, Any]:
        s = self._settings
        status, content = await self._http.request(
            "GET",
            f"{s.meta_base_url}/{s.meta_graph_version}/{path}",
            {"Authorization": f"Bearer {s.meta_access_token.get_secret_value()}"},
            params=params,
        )
        try:
            return status, orjson.loads(content)
        except orjson.JSONDecodeError:
            return status, None

    async def waba_onboarding(self, waba_id: str) -> dict[str, Any]:
        status, body = await self.get_json(
            waba_id,
            {
                "fields": "marketing_messages_onboarding_status,"
                "disable_marketing_messages_on_cloud_api"
            },
        )
        if status != 200 or not isinstance(body, dict):
            raise LookupError(f"GET /{waba_id} answered {status}: {str(body)[:200]}")
        return body

    async def template(self, waba_id: str, name: str, language: str) -> dict[str, Any] | None:
        """The template as the Graph API describes it (name, language, category, status,
        id), or None if the WABA has no such template in that language."""
        status, body = await self.get_json(
            f"{waba_id}/message_templates",
            {"name": name, "fields": "name,language,category,status"},
        )
        if status != 200 or not isinstance(body, dict):
            raise LookupError(
                f"GET /{waba_id}/message_templates answered {status}: {str(body)[:200]}"
            )
        for item in body.get("data", []):
            if (
                isinstance(item, dict)
                and item.get("name") == name
                and item.get("language", language) == language
            ):
                return item
        return None
