"""Apply each mutant of tests/mutants.txt to a scratch copy of the repository, run only its tests there, and report
which survived (make mutants). Not part of make test: tests/test_mutants.py checks the list itself."""

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MUTANTS = Path(__file__).with_name("mutants.txt")
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", "artifacts", "logs", "__pycache__", "*.mar", ".pytest_cache")


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


def killed(mutant: Mutant) -> bool:
    """Whether the mutant's tests fail on a copy of the repository with the mutant applied. The copy sits beside the
    repository (so ../shared is there) and uses its .venv."""
    with tempfile.TemporaryDirectory(prefix="mutant-", dir=REPO_ROOT.parent) as scratch:
        copy = Path(scratch) / "repo"
        shutil.copytree(REPO_ROOT, copy, ignore=NOT_COPIED)
        (copy / ".venv").symlink_to(REPO_ROOT / ".venv")
        target = copy / mutant.file
        target.write_text(target.read_text().replace(mutant.text, mutant.replacement, 1))
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests]
        return subprocess.run(command, cwd=copy, capture_output=True).returncode != 0


def main() -> int:
    mutants = read_mutants()
    survived = []
    for number, mutant in enumerate(mutants, 1):
        print(f"[{number}/{len(mutants)}] {mutant.file}: {mutant.text!r} -> {mutant.replacement!r}", flush=True)
        if not killed(mutant):
            survived.append(mutant)
            print("  SURVIVED", flush=True)
    print(f"{len(mutants) - len(survived)} of {len(mutants)} mutants killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
