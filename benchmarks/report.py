"""The benchmark's figures as the ratios the README's targets are stated in, a capacity plan, and markdown tables."""

import math

from benchmarks.cold_start import CACHE_ARTIFACTS, COMPILES

PEERS_WITHOUT_INT8 = ("torch eager fp32", "torch eager bf16", "ONNX Runtime fp32", "OpenVINO bf16")
# The capacity plan: the p95 latency each server must keep, how busy the autoscaler keeps servers (the HPA's CPU
# target in deploy/kubernetes/hpa.yaml: the rest is headroom while new pods start), and the loads it is sized for.
P95_TARGET_MS = 500
HPA_CPU_UTILISATION = 0.7
RATES = (100, 1_000, 10_000)


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


def targets(report: dict) -> list[dict]:
    """The int8 targets of the README's Performance section, each with the figure this run measured and whether it
    holds; none when no int8 version was served."""
    if "int8" not in report["versions"]:
        return []
    start = report["workers"]["int8"]["cold_start_s"]
    archive_mib = report["archive_mib"]["int8"]
    rows = [("int8 worker cold start (scale 0 -> 1) <= 4 s", f"{start:.1f} s", start <= 4)]
    if jit := report["workers"]["int8"].get("jit_cold_start_s"):
        rows.append((
            "int8 worker cold start <= 0.25x a worker's that compiles the program itself",
            f"{start:.1f} / {jit:.1f} s = {start / jit:.2f}x", start / jit <= 0.25,
        ))  # fmt: skip
    rows += [
        ("int8 archive <= 250 MiB", f"{archive_mib:.0f} MiB", archive_mib <= 250),
        ("int8 worker RSS <= 700 MiB", *_worker_rss(report)),
    ]
    if report["default_precision"] == "int8":  # the in-process figures are the default's
        served, alone = at_concurrency_1(report["levels"], "REST int8")["p50_ms"], report["in_process"]["p50_ms"]
        rows.append((
            "served int8 p50 at concurrency 1 <= 1.25x in process, batch 1 on every core",
            f"{served:.0f} / {alone:.0f} ms = {served / alone:.2f}x", served / alone <= 1.25,
        ))  # fmt: skip
    if "served_int8_over_openvino_int8" in report["ratios"]:
        ratio = report["ratios"]["served_int8_over_openvino_int8"]
        rows.append(("served int8 best throughput >= 0.95x OpenVINO int8 in process", f"{ratio:.2f}x", ratio >= 0.95))
    if agreement := report["agreement"].get("int8"):
        figure = agreement["top1_with_fp32"]
        rows.append((
            "int8 top-1 agreement with fp32 >= 99%", f"{figure:.1%} of {agreement['images']} images", figure >= 0.99
        ))  # fmt: skip
    return [{"target": target, "measured": measured, "holds": holds} for target, measured, holds in rows]


def _worker_rss(report: dict) -> tuple[str, bool]:
    """The int8 worker's RSS when READY and, with an int8 default, its workers' largest once idle after the load
    levels (what a worker holds to wait for work: the target holds only if both do) and right after them (its
    allocator still holding a batch of 8's buffers, given back once idle: shown, and what the capacity plan uses)."""
    ready = report["workers"]["int8"]["rss_mib"]
    if report["default_precision"] != "int8":
        return f"{ready:.0f} MiB when READY", ready <= 700
    busy, idle = max(report["server_rss_mib"]["workers"]), max(report["server_rss_idle_mib"]["workers"])
    measured = f"{ready:.0f} MiB when READY, {idle:.0f} MiB idle after the load levels ({busy:.0f} MiB right after)"
    return measured, max(ready, idle) <= 700


def capacity_plan(report: dict, p95_ms: float = P95_TARGET_MS, utilisation: float = HPA_CPU_UTILISATION) -> list[dict]:
    """Per served precision: the best throughput of a server like this one (its cores, its memory) whose p95 latency
    stays within `p95_ms`, per core and per GiB, and the servers (pods) needed for each of RATES requests/s (one
    image each) when the autoscaler keeps them `utilisation` busy."""
    memory = report["server_rss_mib"]
    plan = []
    for precision in report["versions"]:
        within = [
            level for level in report["levels"] if level["label"] == f"REST {precision}" and level["p95_ms"] <= p95_ms
        ]
        if not within:
            continue
        level = max(within, key=lambda level: level["images_per_s"])
        if precision == report["default_precision"]:  # measured after its load levels
            pod_gib = memory["total"] / 1024
        else:  # the frontend and as many workers, each as its cold start measured it
            pod_gib = (memory["frontend"] + len(memory["workers"]) * report["workers"][precision]["rss_mib"]) / 1024
        pods = {rate: math.ceil(rate / (level["images_per_s"] * utilisation)) for rate in RATES}
        plan.append({
            "precision": precision, "concurrency": level["concurrency"], "images_per_s": level["images_per_s"],
            "p95_ms": level["p95_ms"], "per_core": level["images_per_s"] / report["cores"],
            "pod_gib": pod_gib, "per_gib": level["images_per_s"] / pod_gib, "pods": pods,
        })  # fmt: skip
    return plan


def cold_start_table(report: dict) -> list[str]:
    """The cold-start section as markdown rows: what it measured, each from nothing to the point it names."""
    section, workers = report["cold_start"], report["workers"]
    rows = [
        (f"`make archive` of the {precision} archive", seconds)
        for precision, seconds in section["archive_build_s"].items()
        if seconds is not None
    ]
    rows += [
        (f"{precision} worker, scale 0 -> 1 (READY)", worker["cold_start_s"]) for precision, worker in workers.items()
    ]
    compiling = "int8 worker compiling its program, scale 0 -> 1, inductor's cache"
    if "jit_cold_start_s" in workers.get("int8", {}):
        rows += [
            (f"{compiling} empty", workers["int8"]["jit_cold_start_s"]),
            (f"{compiling} present", workers["int8"]["jit_cached_cold_start_s"]),
        ]
    program = section.get("int8_program", {})
    saved = program.get(COMPILES, {}).get("artifacts_mib")
    for mode, start in program.items():
        name = f"int8 program in a new process that {mode}, to its first batches of 1 and 8"
        if mode == CACHE_ARTIFACTS and saved is not None:
            name += f" ({saved:.1f} MiB of them)" if saved else " (torch saved none: nothing loaded)"
        rows.append((name, start["seconds"]))
    rows.append(("`make serve` (the default served last) to its first answer", section["make_serve_s"]))
    if "container_s" in section:
        rows.append((f"`docker run` of {section['image']} to its first answer", section["container_s"]))
    return [
        "",
        "| cold start | seconds |",
        "| --- | ---: |",
        *(f"| {name} | {seconds:.1f} |" for name, seconds in rows),
    ]


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
    ceiling, cost, memory = report["in_process"], report["explanation"], report["server_rss_mib"]
    idle = report["server_rss_idle_mib"]
    matmul = ", ".join(f"{gflops:.0f} GFLOP/s {dtype}" for dtype, gflops in report["matmul_gflops"].items())
    lines += [
        "",
        f"In-process ceiling of the default ({report['default_precision']}, decoding included, batch "
        f"{ceiling['best_batch']}): {ceiling['best']:.2f} images/s; batch-1 latency p50 {ceiling['p50_ms']:.0f} ms. "
        f"Matmul 4096x4096: {matmul} (bf16 only where the CPU computes it natively). One request at a time, median: "
        f"prediction {cost['prediction_ms']:.0f} ms, explanation {cost['explanation_ms']:.0f} ms. Resident memory "
        f"of the server of the default alone right after its load levels: {memory['total']:.0f} MiB (frontend "
        f"{memory['frontend']:.0f} MiB, workers {' + '.join(f'{worker:.0f}' for worker in memory['workers'])} MiB); "
        f"idle {idle['total']:.0f} MiB (workers {' + '.join(f'{worker:.0f}' for worker in idle['workers'])} MiB).",
        "",
        *(f"- {name.replace('_', ' ')}: **{value}**" for name, value in report["ratios"].items()),
    ]
    lines += cold_start_table(report)
    if report["targets"]:
        lines += ["", "| int8 target | measured | holds |", "| --- | --- | --- |"]
        lines += [
            f"| {row['target']} | {row['measured']} | {'yes' if row['holds'] else '**no**'} |"
            for row in report["targets"]
        ]
    if report["capacity"]:
        rates = " / ".join(f"{rate:,}" for rate in RATES)
        lines += [
            "",
            f"Capacity plan: servers like this one ({report['cores']} cores) kept {HPA_CPU_UTILISATION:.0%} busy, "
            f"p95 <= {P95_TARGET_MS} ms, one image a request.",
            "",
            f"| precision | images/s at p95 <= {P95_TARGET_MS} ms (concurrency, p95) | per core | server GiB | per GiB "
            f"| servers for {rates} requests/s |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in report["capacity"]:
            lines.append(
                f"| {row['precision']} | {row['images_per_s']:.2f} ({row['concurrency']}, {row['p95_ms']:.0f} ms) | "
                f"{row['per_core']:.2f} | {row['pod_gib']:.2f} | {row['per_gib']:.2f} | "
                f"{' / '.join(str(count) for count in row['pods'].values())} |"
            )
    return "\n".join(lines) + "\n"
