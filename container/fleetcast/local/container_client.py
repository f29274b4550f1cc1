"""The platform's side of the multi-model container API (`POST /models`, `DELETE /models/<id>`, invoke).

urllib3 (already a dependency of botocore) keeps connections to the container alive across requests and
is safe to share between the endpoint's request threads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3

# The container contract: `POST /invocations` answers within 60 s; a model load gets a little longer.
INVOKE_TIMEOUT_S = 60.0
LOAD_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 2.0


class ContainerUnavailableError(ConnectionError):
    """The container did not answer at all (not started, crashed, or timed out)."""


@dataclass(frozen=True)
class ContainerResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class ContainerClient:
    def __init__(self, base_url: str, pool_size: int = 32) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = urllib3.PoolManager(maxsize=pool_size, retries=False)

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        read_timeout: float = INVOKE_TIMEOUT_S,
    ) -> ContainerResponse:
        try:
            response = self._http.request(
                method,
                self.base_url + path,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=read_timeout),
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise ContainerUnavailableError(
                f"container at {self.base_url} did not answer {method} {path}: {exc}"
            ) from exc
        return ContainerResponse(status=response.status, headers=dict(response.headers), body=response.data)

    def ping(self) -> bool:
        try:
            return self._request("GET", "/ping", read_timeout=2.0).status == 200
        except ContainerUnavailableError:
            return False

    def load(self, model_name: str, url: str) -> ContainerResponse:
        payload = json.dumps({"model_name": model_name, "url": url}).encode()
        return self._request(
            "POST",
            "/models",
            body=payload,
            headers={"Content-Type": "application/json"},
            read_timeout=LOAD_TIMEOUT_S,
        )

    def unload(self, model_name: str) -> ContainerResponse:
        return self._request("DELETE", f"/models/{quote(model_name, safe='')}", read_timeout=LOAD_TIMEOUT_S)

    def describe(self, model_name: str) -> ContainerResponse:
        return self._request("GET", f"/models/{quote(model_name, safe='')}", read_timeout=10.0)

    def invoke(self, model_name: str, body: bytes, headers: dict[str, str]) -> ContainerResponse:
        return self._request(
            "POST", f"/models/{quote(model_name, safe='')}/invoke", body=body, headers=headers
        )

    def loaded_models(self) -> list[dict[str, Any]]:
        """Every model the container reports as loaded (follows `nextPageToken`)."""
        models: list[dict[str, Any]] = []
        token = None
        for _ in range(1000):  # bounded: 1000 pages of MMS's default 100
            path = "/models" + (f"?next_page_token={quote(str(token))}" if token else "")
            response = self._request("GET", path, read_timeout=10.0)
            if response.status != 200:
                detail = f"GET /models answered {response.status}: {response.text[:200]}"
                raise ContainerUnavailableError(detail)
            page = response.json()
            models.extend(page.get("models", []))
            token = page.get("nextPageToken")
            if not token:
                break
        return models
