"""Read a /metrics answer the way Prometheus does (``prometheus_client.parser``), so tests
assert series and values, not the text's spelling."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Exposition:
    """Every sample of one scrape, by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self._samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in self.families.values()
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels, or None when the scrape has none."""
        return self._samples.get((name, frozenset(labels.items())))

    def labelled(self, name: str, label: str) -> dict[str, float]:
        """Samples of ``name`` by the value of ``label`` (e.g. reasons and their counts)."""
        return {
            dict(labels)[label]: value
            for (sample, labels), value in self._samples.items()
            if sample == name and label in dict(labels)
        }
