"""Prometheus metrics on the metrics port: TorchServe's own and the handler's, parsed with prometheus_client."""

import time

from prometheus_client.parser import text_string_to_metric_families

SETTLE_TIMEOUT_S = 15
REQUESTS = "ts_inference_requests"  # the parser names counter families without "_total"


def scrape(served) -> dict[str, dict[tuple, float]]:
    """Every sample on /metrics as {metric name: {sorted label items: value}}."""
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(served.metrics()):
        for sample in family.samples:
            samples.setdefault(family.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(value for key, value in samples.get(name, {}).items() if all((k, v) in key for k, v in labels.items()))


def scrape_when_counted(served, before: dict, requests: int, predictions: int) -> dict:
    """Scrape until the frontend's request counter and the handler's label counter have both moved by the requests
    sent (the handler's metrics reach the frontend through its log, a moment after the answer), or give up."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        after = scrape(served)
        moved = (total(after, REQUESTS) - total(before, REQUESTS), delta(after, before, "AnimalsPredictedLabel"))
        if moved == (requests, predictions) or time.monotonic() > deadline:
            return after
        time.sleep(0.2)


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def test_counters_move_by_exactly_the_good_and_bad_requests(served, samples, reference):
    good = [path.read_bytes() for path in samples[:7]]
    bad = [b"", b"plain text", b"<html></html>"]
    before = scrape(served)
    for body in good + bad:
        served.post(body)
    after = scrape_when_counted(served, before, len(good) + len(bad), len(good))

    assert delta(after, before, REQUESTS) == len(good) + len(bad)
    assert delta(after, before, "AnimalsPredictedLabel") == len(good)
    assert delta(after, before, "AnimalsBadInputs") == len(bad)
    assert delta(after, before, "AnimalsBadInputs", Reason="empty") == 1
    label = reference.top1(good[0])
    expected = sum(reference.top1(body) == label for body in good)
    assert delta(after, before, "AnimalsPredictedLabel", Label=label) == expected


def test_handler_timings_and_batch_size_are_exported(served, samples):
    before = scrape(served)
    served.post(samples[0].read_bytes())
    metrics = scrape_when_counted(served, before, 1, 1)
    for name in ("AnimalsPreprocessTime", "AnimalsInferenceTime", "AnimalsBatchSize"):
        assert total(metrics, name, ModelName="animals") > 0, name


def test_explanations_are_counted_and_timed(served, samples):
    before = scrape(served)
    for photo in samples[:3]:
        assert "heatmap" in served.explain(photo.read_bytes())
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while delta(after := scrape(served), before, "AnimalsExplanations") < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert delta(after, before, "AnimalsExplanations", ModelName="animals") == 3
    assert total(after, "AnimalsExplanationTime", ModelName="animals") > 0  # a gauge: the last batch's time
