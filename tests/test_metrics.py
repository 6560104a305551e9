"""Prometheus metrics on the metrics port: TorchServe's own and the handler's, parsed with prometheus_client."""

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import HTTP_TIMEOUT_S


def scrape(served) -> dict[str, dict[tuple, float]]:
    """Every sample on /metrics as {metric name: {sorted label items: value}}."""
    text = requests.get(f"{served.config.metrics_url}/metrics", timeout=HTTP_TIMEOUT_S).text
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(family.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(value for key, value in samples.get(name, {}).items() if all((k, v) in key for k, v in labels.items()))


def test_counters_move_by_exactly_the_good_and_bad_requests(served, samples, reference):
    good = [path.read_bytes() for path in samples[:7]]
    bad = [b"", b"plain text", b"<html></html>"]
    before = scrape(served)
    for body in good + bad:
        served.post(body)
    after = scrape(served)

    predicted = total(after, "AnimalsPredictedLabel") - total(before, "AnimalsPredictedLabel")
    assert predicted == len(good)
    assert total(after, "AnimalsBadInputs") - total(before, "AnimalsBadInputs") == len(bad)
    assert total(after, "AnimalsBadInputs", Reason="empty") - total(before, "AnimalsBadInputs", Reason="empty") == 1
    label = reference.top1(good[0])
    expected = sum(reference.top1(body) == label for body in good)
    moved = total(after, "AnimalsPredictedLabel", Label=label) - total(before, "AnimalsPredictedLabel", Label=label)
    assert moved == expected
    requests_total = "ts_inference_requests"  # the parser names counter families without "_total"
    assert total(after, requests_total) - total(before, requests_total) == len(good) + len(bad)


def test_handler_timings_and_batch_size_are_exported(served, samples):
    served.post(samples[0].read_bytes())
    metrics = scrape(served)
    for name in ("AnimalsPreprocessTime", "AnimalsInferenceTime", "AnimalsBatchSize"):
        assert total(metrics, name, ModelName="animals") > 0, name
