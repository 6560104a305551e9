"""The benchmark's figures as ratios (the README states its targets in them) and as a markdown table."""

VGG16_GFLOPS_PER_IMAGE = 15.5


def ratios(report: dict) -> dict[str, float]:
    rest = [level for level in report["levels"] if level["label"] == "REST"]
    grpc = [level for level in report["levels"] if level["label"] == "gRPC"]
    best_rest = max(rest, key=lambda level: level["images_per_s"])
    at = {level["concurrency"]: level for level in rest}
    baseline = report["baseline"]
    flops = report["matmul_gflops"]["bf16" if report["dtype"] == "torch.bfloat16" else "fp32"]
    result = {
        "served_best_over_in_process_ceiling": best_rest["images_per_s"] / report["in_process"]["best"],
        "achieved_gflops_over_matmul_gflops": best_rest["images_per_s"] * VGG16_GFLOPS_PER_IMAGE / flops,
        "p50_at_concurrency_1_over_in_process_latency": at[min(at)]["p50_ms"] / report["in_process"]["p50_ms"],
    }
    if baseline and baseline["concurrency"] in at:
        result["served_over_baseline_at_same_concurrency"] = (
            at[baseline["concurrency"]]["images_per_s"] / baseline["images_per_s"]
        )
    if report["fp32_served"]:
        result["served_best_over_fp32_eager_served"] = best_rest["images_per_s"] / report["fp32_served"]["images_per_s"]
    if grpc:
        result["grpc_best_over_rest_best"] = max(level["images_per_s"] for level in grpc) / best_rest["images_per_s"]
    return {name: round(value, 3) for name, value in result.items()}


def markdown(report: dict) -> str:
    lines = [
        "| protocol | concurrency | images/s | p50 ms | p95 ms | p99 ms | errors | server CPU % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = report["levels"] + [row for row in (report["fp32_served"], report["baseline"]) if row]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['concurrency']} | {row['images_per_s']:.2f} | {row['p50_ms']:.0f} | "
            f"{row['p95_ms']:.0f} | {row['p99_ms']:.0f} | {row['errors']} | {row['server_cpu_percent']:.0f} |"
        )
    ceiling = report["in_process"]
    lines += [
        "",
        f"In-process ceiling ({report['dtype']}, batch {ceiling['best_batch']}): {ceiling['best']:.2f} images/s; "
        f"batch-1 latency p50 {ceiling['p50_ms']:.0f} ms. Matmul 4096x4096: "
        f"{report['matmul_gflops']['fp32']:.0f} GFLOP/s fp32, {report['matmul_gflops']['bf16']:.0f} GFLOP/s bf16. "
        f"Worker cold start {report['cold_start_s']:.1f} s; worker RSS "
        f"{', '.join(f'{mib:.0f}' for mib in report['worker_rss_mib'])} MiB.",
        "",
        *(f"- {name.replace('_', ' ')}: **{value}**" for name, value in report["ratios"].items()),
    ]
    return "\n".join(lines) + "\n"
