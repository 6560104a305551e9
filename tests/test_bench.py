"""The benchmark end to end in miniature (small model, two levels, a few seconds), to keep it working. No timings
are asserted: they belong to the benchmark's own report."""

import json

from benchmarks import bench


def test_tiny_benchmark_writes_its_table_plot_and_ratios(served, tmp_path):
    output = tmp_path / "results"
    arguments = ["--config", str(served.config.path), "--levels", "1,2", "--duration", "1", "--warmup", "0.5"]
    arguments += ["--ceiling-images", "8", "--baseline-concurrency", "2", "--output", str(output)]
    assert bench.main(arguments) == 0
    report = json.loads((output / "results.json").read_text())
    assert [(level["label"], level["concurrency"]) for level in report["levels"]] == [
        ("REST", 1), ("REST", 2), ("gRPC", 1), ("gRPC", 2),
    ]  # fmt: skip
    assert all(level["errors"] == 0 and level["images_per_s"] > 0 for level in report["levels"])
    assert report["baseline"]["errors"] == 0 and report["baseline"]["images_per_s"] > 0
    assert set(report["ratios"]) >= {"served_best_over_in_process_ceiling", "grpc_best_over_rest_best"}
    assert "| REST | 1 |" in (output / "results.md").read_text()
    assert (output / "throughput.png").read_bytes().startswith(b"\x89PNG")
    assert served.versions() == {"1.0"} and [path.name for path in served.config.model_store.glob("*.mar")] == [
        "animals-1.0.mar"
    ]
