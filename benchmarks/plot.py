"""The benchmark's plot: throughput and p99 latency against concurrency, per protocol and precision, with the
in-process ceiling and the baseline."""

import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import matplotlib.pyplot as plt


def write_plot(report: dict, path: Path) -> None:
    figure, (throughput_axes, latency_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for label in sorted({level["label"] for level in report["levels"]}):
        rows = [level for level in report["levels"] if level["label"] == label]
        concurrency = [row["concurrency"] for row in rows]
        throughput_axes.plot(concurrency, [row["images_per_s"] for row in rows], marker="o", label=label)
        latency_axes.plot(concurrency, [row["p99_ms"] for row in rows], marker="o", label=label)
    throughput_axes.axhline(report["in_process"]["best"], color="grey", linestyle="--", label="in-process ceiling")
    baseline = report["baseline"]
    throughput_axes.axhline(baseline["images_per_s"], color="black", linestyle="-.", label=baseline["label"])
    throughput_axes.set(
        title="Throughput", xlabel="concurrent clients", ylabel="images/s", xscale="log", ylim=(0, None)
    )
    latency_axes.set(title="p99 latency", xlabel="concurrent clients", ylabel="ms", xscale="log", ylim=(0, None))
    for axes in (throughput_axes, latency_axes):
        axes.set_xticks(sorted({row["concurrency"] for row in report["levels"]}))
        axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
