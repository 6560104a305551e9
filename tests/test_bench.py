"""The benchmark end to end in miniature (small model, two levels, a few seconds), to keep it working: the default's
weights served in int8, bf16 and fp32 side by side, the in-process peers, the baseline, the explanation cost. No
timings are asserted: they belong to the benchmark's own report."""

import json
import subprocess

from benchmarks.cold_start import MODES
from tests.support import REPO_ROOT

PEERS_PYTHON = REPO_ROOT / ".venv" / "peers" / "bin" / "python"  # as `make bench` runs it: with the peer runtimes


def test_tiny_benchmark_writes_its_tables_plot_and_ratios(served, tmp_path):
    output = tmp_path / "results"
    arguments = ["--config", str(served.config.path), "--levels", "1,2", "--duration", "1", "--warmup", "0.5"]
    arguments += ["--peer-seconds", "0.5", "--ceiling-images", "8", "--baseline-concurrency", "2"]
    arguments += ["--precisions", "int8,bf16,fp32"]  # bf16 too, on any CPU: the small model is quick in it
    arguments += ["--no-container"]  # test_container times a container of its image as the benchmark does
    command = [str(PEERS_PYTHON), "-m", "benchmarks.bench", *arguments, "--output", str(output)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((output / "results.json").read_text())
    default = report["default_precision"]
    assert set(report["versions"]) == {"int8", "bf16", "fp32"} and report["versions"][default] == "1.0"
    labels = [(level["label"], level["concurrency"]) for level in report["levels"]]
    assert labels == [(f"{protocol} {precision}", c) for protocol, precision in [
        *(("REST", p) for p in report["versions"]), ("gRPC", default)] for c in (1, 2)]  # fmt: skip
    assert all(level["errors"] == 0 and level["images_per_s"] > 0 for level in report["levels"])
    assert report["baseline"]["errors"] == 0 and report["baseline"]["images_per_s"] > 0
    assert set(report["peers"]) >= {"ONNX Runtime fp32", "OpenVINO int8 (NNCF)", "torch int8 (the served program)"}
    assert all(worker["cold_start_s"] > 0 and worker["rss_mib"] > 0 for worker in report["workers"].values())
    assert (
        report["workers"]["int8"]["jit_cold_start_s"] > 0 and report["workers"]["int8"]["jit_cached_cold_start_s"] > 0
    )
    cold_start = report["cold_start"]
    assert all(cold_start["archive_build_s"][precision] > 0 for precision in ("int8", "bf16", "fp32"))
    assert set(cold_start["int8_program"]) == set(MODES)
    assert all(start["seconds"] > 0 and start["rss_mib"] > 0 for start in cold_start["int8_program"].values())
    assert cold_start["make_serve_s"] > 0 and "container_s" not in cold_start
    assert {"served_int8_over_openvino_int8", "served_int8_over_best_bf16_fp32_peer"} <= set(report["ratios"])
    assert report["ratios"]["explanation_over_prediction_at_concurrency_1"] > 0
    assert report["agreement"]["int8"]["images"] == 80
    assert (output / "throughput.png").read_bytes().startswith(b"\x89PNG")
    assert "| `make serve` (the default served last) to its first answer |" in (output / "results.md").read_text()
    assert served.versions() == {"1.0"} and [path.name for path in served.config.model_store.glob("*.mar")] == [
        "animals-1.0.mar"
    ]
