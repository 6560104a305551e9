"""The benchmark's ratios come from the right rows: a synthetic report whose every figure differs, so that a ratio
taken from the wrong level, precision, peer or direction gives another number."""

from benchmarks.cold_start import AHEAD_OF_TIME, CACHE_ARTIFACTS, COMPILES
from benchmarks.report import capacity_plan, cold_start_table, markdown, ratios, targets


def level(label: str, concurrency: int, images_per_s: float, p50_ms: float) -> dict:
    figures = {"p95_ms": p50_ms * 1.1, "p99_ms": p50_ms * 1.2, "errors": 0, "server_cpu_percent": 190.0}
    return {"label": label, "concurrency": concurrency, "images_per_s": images_per_s, "p50_ms": p50_ms} | figures


def synthetic_report() -> dict:
    levels = [  # not in concurrency order, and the best throughput never at the first or the last level
        level("REST int8", 4, 20.0, 170.0),
        level("REST int8", 16, 26.0, 600.0),
        level("REST int8", 1, 10.0, 90.0),
        level("REST int8", 8, 24.0, 330.0),
        level("REST bf16", 16, 12.0, 1250.0),
        level("REST bf16", 1, 5.0, 180.0),
        level("REST bf16", 8, 11.0, 700.0),
        level("REST fp32", 8, 6.0, 1260.0),
        level("REST fp32", 1, 3.0, 340.0),
        level("gRPC int8", 1, 9.0, 95.0),
        level("gRPC int8", 16, 27.0, 620.0),
        level("gRPC int8", 8, 23.0, 340.0),
    ]
    peers = {
        "torch eager fp32": 4.0,
        "OpenVINO bf16": 12.5,
        "torch eager bf16": 11.0,
        "ONNX Runtime fp32": 5.0,
        "OpenVINO int8 (NNCF)": 25.0,
        "torch int8 (the served program)": 40.0,  # int8: never the float peers' best
    }
    worker = {"cold_start_s": 4.0, "rss_mib": 900.0}
    return {
        "default_precision": "int8",
        "versions": {"int8": "1.0", "bf16": "bench-bf16", "fp32": "bench-fp32"},
        "levels": levels,
        "peers": peers,
        "in_process": {"best": 32.5, "best_batch": 8, "p50_ms": 49.0},
        "explanation": {"prediction_ms": 100.0, "explanation_ms": 250.0},
        "baseline": level("baseline (FastAPI, fp32)", 4, 4.0, 1800.0),
        "workers": {
            "int8": {"cold_start_s": 3.5, "rss_mib": 900.0, "jit_cold_start_s": 10.0, "jit_cached_cold_start_s": 7.0},
            "bf16": worker,
            "fp32": worker,
        },
        "archive_mib": {"int8": 260.0, "bf16": 60.0, "fp32": 60.0},
        "cold_start": {
            "archive_build_s": {"int8": 240.0, "bf16": None, "fp32": 30.0},  # bf16: a record from before the timing
            "int8_program": {
                AHEAD_OF_TIME: {"seconds": 4.5},
                COMPILES: {"seconds": 45.0, "artifacts_mib": 0.0},
                CACHE_ARTIFACTS: {"seconds": 44.0},
            },
            "make_serve_s": 20.0,
            "image": "animals-torchserve:1.0",
            "container_s": 25.0,
        },
        "server_rss_mib": {"frontend": 300.0, "workers": [700.0, 710.0], "total": 1710.0},
        "server_rss_idle_mib": {"frontend": 300.0, "workers": [680.0, 690.0], "total": 1670.0},
        "agreement": {"int8": {"images": 80, "top1_with_fp32": 1.0}},
        "matmul_gflops": {"fp32": 100.0, "bf16": 300.0},
        "cores": 2,
    }


def test_each_ratio_comes_from_its_own_rows():
    assert ratios(synthetic_report()) == {
        "served_default_over_in_process_ceiling": 0.8,  # 26 (best REST int8) / 32.5
        "served_int8_over_served_bf16": 2.167,  # 26 / 12
        "p50_at_concurrency_1_int8_over_bf16": 0.5,  # 90 / 180
        "served_int8_over_best_bf16_fp32_peer": 2.08,  # 26 / 12.5 (OpenVINO bf16)
        "served_int8_over_openvino_int8": 1.04,  # 26 / 25
        "explanation_over_prediction_at_concurrency_1": 2.5,  # 250 / 100
        "grpc_best_over_rest_best": 1.038,  # 27 / 26
        "served_over_baseline_at_same_concurrency": 5.0,  # REST int8 at 4: 20 / 4
    }


def test_the_tables_show_each_precisions_best_throughput():
    report = synthetic_report()
    report["ratios"] = ratios(report)
    report["targets"] = targets(report)
    report["capacity"] = capacity_plan(report)
    text = markdown(report)
    assert "| int8 | 1.0 | 3.5 | 900 | 26.00 |" in text and "| bf16 | bench-bf16 | 4.0 | 900 | 12.00 |" in text
    assert "| fp32 | bench-fp32 | 4.0 | 900 | 6.00 |" in text
    assert "- served int8 over openvino int8: **1.04**" in text


def test_each_target_is_judged_on_its_own_figure():
    report = synthetic_report()
    report["ratios"] = ratios(report)
    assert [(row["measured"], row["holds"]) for row in targets(report)] == [
        ("3.5 s", True),  # the int8 worker's cold start, not the others' 4.0
        ("3.5 / 10.0 s = 0.35x", False),  # against the worker that compiles (10 s)
        ("260 MiB", False),  # the int8 archive
        # the int8 worker's, then the default's largest idle and right after the levels
        ("900 MiB when READY, 690 MiB idle after the load levels (710 MiB right after)", False),
        ("90 / 49 ms = 1.84x", False),  # REST int8 at concurrency 1 against the in-process batch-1 p50
        ("1.04x", True),  # 26 / 25 (OpenVINO int8)
        ("100.0% of 80 images", True),
    ]
    report["workers"]["int8"]["rss_mib"] = 650.0  # within 700 when READY and idle, not right after the levels
    assert targets(report)[3] == {
        "target": "int8 worker RSS <= 700 MiB",
        "measured": "650 MiB when READY, 690 MiB idle after the load levels (710 MiB right after)", "holds": True,
    }  # fmt: skip
    report["server_rss_idle_mib"]["workers"] = [650.0, 701.0]  # one idle worker over 700
    assert targets(report)[3]["holds"] is False
    report["targets"], report["capacity"] = targets(report), []
    assert "| int8 archive <= 250 MiB | 260 MiB | **no** |" in markdown(report)
    assert "| int8 worker cold start (scale 0 -> 1) <= 4 s | 3.5 s | yes |" in markdown(report)


def test_the_capacity_plan_sizes_servers_from_the_fastest_level_within_the_latency_target():
    report = synthetic_report()
    int8, bf16, fp32 = capacity_plan(report)
    # int8: concurrency 8 (24 images/s, p95 363 ms); 16 is faster but its p95 (660 ms) is over 500 ms
    assert (int8["concurrency"], int8["images_per_s"], int8["per_core"]) == (8, 24.0, 12.0)
    assert int8["pod_gib"] == 1710 / 1024  # the default's server, as measured after its levels
    assert int8["pods"] == {100: 6, 1_000: 60, 10_000: 596}  # ceil(rate / (24 x 0.7))
    assert (bf16["concurrency"], bf16["pods"]) == (1, {100: 29, 1_000: 286, 10_000: 2858})  # ceil(rate / 3.5)
    assert bf16["pod_gib"] == (300 + 2 * 900) / 1024  # the frontend and as many workers as the default has
    assert (fp32["concurrency"], fp32["images_per_s"]) == (1, 3.0)
    report["ratios"], report["targets"], report["capacity"] = ratios(report), [], [int8]
    assert "| int8 | 24.00 (8, 363 ms) | 12.00 | 1.67 | 14.37 | 6 / 60 / 596 |" in markdown(report)


def test_the_cold_start_table_names_each_start_with_its_own_figure():
    rows = "\n".join(cold_start_table(synthetic_report()))
    assert "| `make archive` of the int8 archive | 240.0 |" in rows
    assert "`make archive` of the fp32 archive" in rows and "bf16 archive" not in rows
    assert (
        "| int8 worker, scale 0 -> 1 (READY) | 3.5 |" in rows and "| fp32 worker, scale 0 -> 1 (READY) | 4.0 |" in rows
    )
    assert "| int8 worker compiling its program, scale 0 -> 1, inductor's cache empty | 10.0 |" in rows
    assert "| int8 worker compiling its program, scale 0 -> 1, inductor's cache present | 7.0 |" in rows
    assert f"| int8 program in a new process that {AHEAD_OF_TIME}, to its first batches of 1 and 8 | 4.5 |" in rows
    assert f"| int8 program in a new process that {COMPILES}, to its first batches of 1 and 8 | 45.0 |" in rows
    nothing = f"that {CACHE_ARTIFACTS}, to its first batches of 1 and 8 (torch saved none: nothing loaded) | 44.0 |"
    assert nothing in rows
    assert "| `make serve` (the default served last) to its first answer | 20.0 |" in rows
    assert "| `docker run` of animals-torchserve:1.0 to its first answer | 25.0 |" in rows
