"""The web app's Prometheus metrics: what users say was wrong, next to TorchServe's own drift counters."""

from prometheus_client import Counter

CORRECTIONS = Counter(
    "animals_corrections",
    "Answers users corrected, by the model version that answered, its top-1 label and the label users gave",
    ["model_version", "answered", "corrected"],
)
