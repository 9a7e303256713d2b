"""Reading /metrics the way Prometheus does (prometheus_client's own parser)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, base_url: str) -> None:
        response = httpx.get(f"{base_url}/metrics", timeout=30)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 when none)."""
        return sum(
            value
            for sample, sample_labels, value in self.samples
            if sample == name and labels.items() <= sample_labels.items()
        )

    def has(self, name: str, **labels: str) -> bool:
        return any(
            sample == name and labels.items() <= sample_labels.items()
            for sample, sample_labels, _ in self.samples
        )
