"""Fuzz every parser of untrusted bytes for a while each (make fuzz): the request body, KServe bodies, and image
decoding, seeded from the hostile and valid corpora of the tests. What a harness finds (crash, timeout, memory
blow-up) is saved in fuzz/findings/HARNESS/; commit it, and the hostile-corpus tests run it against the server."""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from tests import corpus, hostile

REPO_ROOT = Path(__file__).resolve().parent.parent
HARNESSES = ("request", "kserve", "image")  # fuzz.harness.HARNESSES (not imported here: importing instruments)
FINDINGS = hostile.FINDINGS
TIMEOUT_S = 2  # libFuzzer's whole seconds per input; the CPU bound itself is checked by tests/test_hostile.py
MAX_LEN = 1 << 18


def write_seeds(folder: Path) -> int:
    """The corpora as seed files: every hostile body, every valid and invalid test image."""
    seeds = {name: case.body for name, case in hostile.corpus().items()}
    seeds |= corpus.valid_images() | corpus.invalid_inputs()
    for name, body in seeds.items():
        (folder / name).write_bytes(body)
    return len(seeds)


def fuzz(name: str, seconds: int, findings: Path, seeds: Path) -> tuple[bool, str]:
    """Run one harness for `seconds` from the seed files in `seeds`; (nothing new found, libFuzzer's last lines)."""
    found = findings / name
    found.mkdir(parents=True, exist_ok=True)
    before = set(found.iterdir())
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as evolved:
        command = [
            sys.executable, "-m", "fuzz.harness", name, f"-max_total_time={seconds}", f"-timeout={TIMEOUT_S}",
            f"-max_len={MAX_LEN}", f"-artifact_prefix={found}/", "-print_final_stats=1", str(evolved), str(seeds),
        ]  # fmt: skip
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=seconds * 3 + 120)
    new = sorted(set(found.iterdir()) - before)
    lines = (result.stdout + result.stderr).splitlines()
    summary = [line for line in lines if line.startswith(("stat::number_of_executed_units", "#", "=="))][-3:]
    report = "\n".join(summary + [f"new finding: {path}" for path in new])
    if not new and result.returncode != 0:
        report += "\n" + "\n".join(lines[-20:])
    return not new and result.returncode == 0, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__)
    parser.add_argument("harnesses", nargs="*", metavar="HARNESS", help=f"of {', '.join(HARNESSES)} (default: all)")
    parser.add_argument("--seconds", type=int, default=60, help="per harness (default: %(default)s)")
    parser.add_argument("--findings", type=Path, default=FINDINGS, help="where finds are saved (default: %(default)s)")
    args = parser.parse_args(argv)
    unknown = set(args.harnesses) - set(HARNESSES)
    if unknown:
        parser.error(f"no harness {', '.join(sorted(unknown))}; there are {', '.join(HARNESSES)}")
    clean = True
    with tempfile.TemporaryDirectory(prefix="fuzz-seeds-") as seeds:
        print(f"Seeding from {write_seeds(Path(seeds))} bodies of the test corpora", flush=True)
        for name in args.harnesses or HARNESSES:
            print(f"Fuzzing {name} for {args.seconds} s", flush=True)
            ok, report = fuzz(name, args.seconds, args.findings, Path(seeds))
            print(report, flush=True)  # libFuzzer's own counts: executions, coverage, memory
            clean &= ok
    print("Nothing new found" if clean else f"Findings saved under {args.findings}: see above")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
