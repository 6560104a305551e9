"""Apply each mutant of tests/mutants.txt to a scratch copy of the repository, run only its tests there, and report
which survived (make mutants). Not part of make test: tests/test_mutants.py checks the list itself."""

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support import copy_of_repository

REPO_ROOT = Path(__file__).resolve().parent.parent
MUTANTS = Path(__file__).with_name("mutants.txt")


@dataclass(frozen=True)
class Mutant:
    file: str
    text: str
    replacement: str
    tests: list[str]


def read_mutants(path: Path = MUTANTS) -> list[Mutant]:
    mutants = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            file, text, replacement, tests = (part.strip() for part in line.split(" | "))
            mutants.append(Mutant(file, text, replacement, tests.split()))
    return mutants


def run_tests(tests: list[str], mutant: Mutant | None = None, workers: int = 0) -> subprocess.CompletedProcess:
    """`tests` run on a copy of the repository with `mutant` applied (None: as it is), on `workers` pytest-xdist
    workers (0: in one process). The copy sits beside the repository, so that ../shared is there."""
    copy = Path(tempfile.mkdtemp(prefix="mutant-", dir=REPO_ROOT.parent))
    try:
        copy_of_repository(copy)
        if mutant is not None:
            target = copy / mutant.file
            target.write_text(target.read_text().replace(mutant.text, mutant.replacement, 1))
        options = ["-n", str(workers), "--dist", "loadscope"] if workers else ["-x"]
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, *tests]
        return subprocess.run(command, cwd=copy, capture_output=True, text=True)
    finally:
        shutil.rmtree(copy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutants", description=__doc__)
    parser.add_argument("--file", help="only the mutants of files whose path contains this text (default: all)")
    args = parser.parse_args(argv)
    mutants = [mutant for mutant in read_mutants() if args.file is None or args.file in mutant.file]
    if not mutants:
        print(f"no mutant of a file matching {args.file!r} in {MUTANTS}")
        return 1
    every_test = sorted({test for mutant in mutants for test in mutant.tests})
    print(f"Running the {len(every_test)} named tests on an unchanged copy first", flush=True)
    baseline = run_tests(every_test, workers=2)
    if baseline.returncode != 0:
        print(baseline.stdout[-3000:])
        print("They fail without any mutant: fix that first (a failing test kills every mutant)")
        return 1
    survived = []
    for number, mutant in enumerate(mutants, 1):
        print(f"[{number}/{len(mutants)}] {mutant.file}: {mutant.text!r} -> {mutant.replacement!r}", flush=True)
        if run_tests(mutant.tests, mutant).returncode == 0:
            survived.append(mutant)
            print("  SURVIVED", flush=True)
    print(f"{len(mutants) - len(survived)} of {len(mutants)} mutants killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
