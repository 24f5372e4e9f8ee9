"""A service's client of /api/v1 that uses nothing but HTTP and its key (requests), as a car
share or gym would: what docs/api-client.md shows, with polling until issuances settle."""

from __future__ import annotations

import time
from typing import Any

import requests


class ServiceClient:
    def __init__(self, base_url: str, key: str, *, lang: str = "en") -> None:
        self.base = base_url.rstrip("/") + "/api/v1"
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {key}", "Accept-Language": lang})

    def issue(self, **body: Any) -> requests.Response:
        return self.http.post(f"{self.base}/issuances", json=body, timeout=30)

    def batch(self, items: list[dict[str, Any]]) -> requests.Response:
        return self.http.post(
            f"{self.base}/issuances/batch", json={"issuances": items}, timeout=120
        )

    def get(self, issuance_id: int) -> requests.Response:
        return self.http.get(f"{self.base}/issuances/{issuance_id}", timeout=30)

    def page(self, **params: Any) -> requests.Response:
        return self.http.get(f"{self.base}/issuances", params=params, timeout=30)

    def service(self) -> requests.Response:
        return self.http.get(f"{self.base}/service", timeout=30)

    def wait_settled(self, ids: list[int], timeout: float = 240.0) -> dict[int, dict[str, Any]]:
        """Poll until none of `ids` is pending (by pages of the list, then each by id)."""
        deadline = time.monotonic() + timeout
        wanted = set(ids)
        while True:
            pending: set[int] = set()
            after = 0
            while True:
                r = self.page(status="pending", after=after, limit=1000)
                assert r.status_code == 200, r.text
                rows = r.json()["issuances"]
                pending |= {row["id"] for row in rows} & wanted
                if len(rows) < 1000:
                    break
                after = rows[-1]["id"]
            if not pending:
                break
            assert time.monotonic() < deadline, f"{len(pending)} issuances still pending"
            time.sleep(0.5)  # polling interval of a real client, not a wait for time to pass
        out = {}
        for i in ids:
            r = self.get(i)
            assert r.status_code == 200, r.text
            out[i] = r.json()
        return out
