"""The benchmark's figures as the ratios the README's targets are stated in, and as markdown tables."""

PEERS_WITHOUT_INT8 = ("torch eager fp32", "torch eager bf16", "ONNX Runtime fp32", "OpenVINO bf16")


def best(levels: list[dict], label: str) -> dict:
    return max((level for level in levels if level["label"] == label), key=lambda level: level["images_per_s"])


def at_concurrency_1(levels: list[dict], label: str) -> dict:
    return min((level for level in levels if level["label"] == label), key=lambda level: level["concurrency"])


def ratios(report: dict) -> dict[str, float]:
    levels, peers, default = report["levels"], report["peers"], report["default_precision"]
    served = {precision: best(levels, f"REST {precision}")["images_per_s"] for precision in report["versions"]}
    result = {"served_default_over_in_process_ceiling": served[default] / report["in_process"]["best"]}
    if "int8" in served and "bf16" in served:
        result["served_int8_over_served_bf16"] = served["int8"] / served["bf16"]
        result["p50_at_concurrency_1_int8_over_bf16"] = (
            at_concurrency_1(levels, "REST int8")["p50_ms"] / at_concurrency_1(levels, "REST bf16")["p50_ms"]
        )
    float_peers = [peers[name] for name in PEERS_WITHOUT_INT8 if name in peers]
    if "int8" in served and float_peers:
        result["served_int8_over_best_bf16_fp32_peer"] = served["int8"] / max(float_peers)
    if "int8" in served and "OpenVINO int8 (NNCF)" in peers:
        result["served_int8_over_openvino_int8"] = served["int8"] / peers["OpenVINO int8 (NNCF)"]
    cost = report["explanation"]
    result["explanation_over_prediction_at_concurrency_1"] = cost["explanation_ms"] / cost["prediction_ms"]
    grpc = [level for level in levels if level["label"] == f"gRPC {default}"]
    if grpc:
        result["grpc_best_over_rest_best"] = max(level["images_per_s"] for level in grpc) / served[default]
    baseline = report["baseline"]
    same = [level for level in levels if level["label"] == f"REST {default}"]
    at = {level["concurrency"]: level for level in same}
    if baseline and baseline["concurrency"] in at:
        result["served_over_baseline_at_same_concurrency"] = (
            at[baseline["concurrency"]]["images_per_s"] / baseline["images_per_s"]
        )
    return {name: round(value, 3) for name, value in result.items()}


def markdown(report: dict) -> str:
    lines = [
        "| served | concurrency | images/s | p50 ms | p95 ms | p99 ms | errors | server CPU % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in [*report["levels"], report["baseline"]]:
        lines.append(
            f"| {row['label']} | {row['concurrency']} | {row['images_per_s']:.2f} | {row['p50_ms']:.0f} | "
            f"{row['p95_ms']:.0f} | {row['p99_ms']:.0f} | {row['errors']} | {row['server_cpu_percent']:.0f} |"
        )
    lines += ["", "| precision | version | worker cold start s | worker RSS MiB | best images/s | int8 agreement |"]
    lines += ["| --- | --- | ---: | ---: | ---: | --- |"]
    for precision, version in report["versions"].items():
        start = report["workers"][precision]
        agreement = report["agreement"].get(precision) or ""
        lines.append(
            f"| {precision} | {version} | {start['cold_start_s']:.1f} | {start['rss_mib']:.0f} | "
            f"{best(report['levels'], f'REST {precision}')['images_per_s']:.2f} | {agreement} |"
        )
    lines += ["", "| in-process peer (model only) | images/s |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in report["peers"].items()]
    ceiling, cost = report["in_process"], report["explanation"]
    lines += [
        "",
        f"In-process ceiling of the default ({report['default_precision']}, decoding included, batch "
        f"{ceiling['best_batch']}): {ceiling['best']:.2f} images/s; batch-1 latency p50 {ceiling['p50_ms']:.0f} ms. "
        f"Matmul 4096x4096: {report['matmul_gflops']['fp32']:.0f} GFLOP/s fp32, "
        f"{report['matmul_gflops']['bf16']:.0f} GFLOP/s bf16. One request at a time, median: prediction "
        f"{cost['prediction_ms']:.0f} ms, explanation {cost['explanation_ms']:.0f} ms.",
        "",
        *(f"- {name.replace('_', ' ')}: **{value}**" for name, value in report["ratios"].items()),
    ]
    return "\n".join(lines) + "\n"
