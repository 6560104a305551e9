"""Score the candidate and the current default on the same labelled photos (class folders), and decide whether the
candidate may be promoted: at least as many right overall, and on no class of MIN_CLASS_PHOTOS photos or more
worse by more than CLASS_SLACK photos."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from animals.errors import UserError
from animals.folders import class_folders, image_files

MIN_CLASS_PHOTOS = 5
CLASS_SLACK = 1
IN_FLIGHT = 4


@dataclass(frozen=True)
class Score:
    version: str
    right: Counter

    def total(self) -> int:
        return sum(self.right.values())


def labelled_photos(folders: list[Path]) -> list[tuple[Path, str]]:
    """Every photo under the folders' class folders, with its class (Animals-10's Italian names become English)."""
    photos = [
        (path, label)
        for folder in folders
        for label, class_folder in class_folders(folder).items()
        for path in image_files(class_folder)
    ]
    if not photos:
        raise UserError(f"no photos in the check set {', '.join(map(str, folders))}")
    return photos


def answers_of(client, version: str, paths: list[Path], description: str) -> dict[Path, dict]:
    """`version`'s answer to every photo, IN_FLIGHT requests at a time: every worker busy, and TorchServe batches."""
    pool = ThreadPoolExecutor(IN_FLIGHT)
    try:
        answers = pool.map(lambda path: client.predict(path.read_bytes(), version), paths)
        progress = tqdm(answers, total=len(paths), desc=description, unit="photo", leave=False, disable=None)
        return dict(zip(paths, progress, strict=True))
    finally:
        pool.shutdown(cancel_futures=True)  # the first error stops the rest


def score(client, version: str, photos: list[tuple[Path, str]], known: dict[Path, dict] | None = None) -> Score:
    """How many photos of each class `version` answers right (top-1); `known` answers are not asked again."""
    known = known or {}
    unknown = list(dict.fromkeys(path for path, _ in photos if path not in known))
    answers = known | answers_of(client, version, unknown, f"scoring version {version}")
    return Score(version, Counter(label for path, label in photos if next(iter(answers[path])) == label))


def shortfalls(current: Score, candidate: Score, photos: list[tuple[Path, str]]) -> list[str]:
    """Why the candidate may not replace the current default; empty when it may."""
    sizes = Counter(label for _, label in photos)
    reasons = []
    if candidate.total() < current.total():
        reasons.append(
            f"version {candidate.version} answers {candidate.total()} of {len(photos)} photos right, "
            f"version {current.version} {current.total()}"
        )
    for label, size in sorted(sizes.items()):
        if size >= MIN_CLASS_PHOTOS and candidate.right[label] < current.right[label] - CLASS_SLACK:
            reasons.append(
                f"{label}: {candidate.right[label]} of {size} right, {current.right[label]} with {current.version}"
            )
    return reasons


def table(current: Score, candidate: Score, photos: list[tuple[Path, str]]) -> str:
    """Both versions' right answers per class, side by side."""
    sizes = Counter(label for _, label in photos)
    header = f"{'class':<12}{'photos':>7}{current.version + ' (now)':>16}{candidate.version + ' (new)':>16}"
    lines = [header]
    for label, size in sorted(sizes.items()):
        lines.append(f"{label:<12}{size:>7}{current.right[label]:>16}{candidate.right[label]:>16}")
    total = len(photos)
    lines.append(f"{'all':<12}{total:>7}{share(current.total(), total):>16}{share(candidate.total(), total):>16}")
    return "\n".join(lines)


def share(right: int, total: int) -> str:
    return f"{right} ({right / total:.1%})"
