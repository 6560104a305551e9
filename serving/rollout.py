"""Roll a new model version out behind the current default, or roll back to the previous default.

rollout: register the new version beside the default, send it the sample images, check every answer is well formed
(and, given expected labels, that enough top-1 labels agree), score it against the current default on a check set of
labelled photos (serving.check_set), then make it the default. When a check fails, the new version is unregistered
and the old default keeps serving.
"""

import json
from pathlib import Path

from animals.errors import UserError
from animals.folders import photos_in
from animals.labels import english_name
from serving.check_set import answers_of, labelled_photos, score, shortfalls, table
from serving.client import TorchServeError
from serving.config import ServerConfig
from serving.history import previous_default, push_history
from serving.store import archive_labels, archive_version, install_archive, remove_archive


class CheckFailed(Exception):
    """The new version gave an answer that does not pass the rollout checks."""


def rollout(
    client,
    config: ServerConfig,
    archive: Path,
    images: Path,
    expected: str | None,
    min_agreement: float,
    workers: int = 1,
    check_set: list[Path] | None = None,
    force: bool = False,
) -> str:
    """Register `archive` with `workers` workers, check it and promote it; return the new default version. With a
    check set, it is promoted only when it scores no worse than the current default there (check_set), unless
    `force`."""
    samples = photos_in(images)
    checked = labelled_photos(check_set) if check_set else []
    labels = expected_labels(expected, samples, images) if expected else None
    current = client.default_version()
    version = archive_version(archive)
    if version in client.versions():
        raise UserError(f"version {version} is already registered: build the new archive with another VERSION")
    was_in_store = config.archive(version).is_file()
    name, version = install_archive(archive, config)
    print(f"Current default: {current}. Registering {name} as version {version}")
    stopped = f"rollout of version {version} stopped; version {current} is still the default"
    promoted = False
    try:
        try:
            print(f"  {client.register_version(name, version, workers)}")
        except TorchServeError as failure:
            print(f"Registration failed: {failure}")
            raise UserError(stopped) from failure
        try:
            answers = answers_of(client, version, samples, f"asking version {version}")
            print(f"Checking {len(answers)} answers of version {version}")
            check_answers(answers, archive_labels(archive))
            if labels is not None:
                check_agreement(answers, labels, images, min_agreement)
            if checked:
                compare_on_check_set(client, current, version, checked, force, answers)
        except (CheckFailed, TorchServeError) as failure:
            print(f"Check failed: {failure}")
            raise UserError(stopped) from failure
        print(f"Making {version} the default: {switch_default(client, config, version)}")
        promoted = True
    finally:
        if not promoted:
            print(f"  Unregistering {version}: {unregister_quietly(client, version)}")
            if not was_in_store:
                remove_archive(config, name)
    return version


def compare_on_check_set(
    client, current: str, version: str, photos: list[tuple[Path, str]], force: bool, answers: dict[Path, dict]
) -> None:
    """Score both versions on the check set (the new one's `answers` reused) and print them per class; stop unless
    the new one is no worse."""
    print(f"Scoring versions {current} and {version} on the check set ({len(photos)} photos)")
    now, new = score(client, current, photos), score(client, version, photos, answers)
    print(table(now, new, photos))
    reasons = shortfalls(now, new, photos)
    if reasons and not force:
        raise CheckFailed("; ".join(reasons))
    if reasons:
        print(f"--force: promoting version {version} although {'; '.join(reasons)}")
    else:
        print(f"Version {version} is at least as accurate as {current} overall and on every class")


def switch_default(client, config: ServerConfig, version: str) -> str:
    """Make `version` the default, remembering the one it replaces for `rollback`."""
    push_history(config, client.default_version())
    answer = client.set_default(version)
    push_history(config, version)
    return answer


def retire(client, config: ServerConfig, version: str, keep_archive: bool = False) -> str:
    """Unregister a version and, unless asked to keep it, delete its archive from the model store."""
    archive = client.describe(version)[0]["modelUrl"]
    answer = client.unregister(version)
    if keep_archive:
        return f"{answer}; {archive} stays in {config.model_store}"
    removed = remove_archive(config, archive)
    return f"{answer}; removed {removed}" if removed else f"{answer}; {archive} was not in {config.model_store}"


def unregister_quietly(client, version: str) -> str:
    """Unregister a failed version; a version TorchServe already dropped is fine."""
    try:
        return client.unregister(version)
    except TorchServeError as error:
        return f"not registered ({error})"


def rollback(client, config: ServerConfig) -> str:
    """Make the previous default version the default again; return it."""
    current = client.default_version()
    previous = previous_default(config, current, client.versions())
    print(f"Rolling back from {current} to {previous}: {client.set_default(previous)}")
    push_history(config, previous)
    return previous


def expected_labels(source: str, samples: list[Path], root: Path) -> dict[str, str]:
    """Expected top-1 labels by image path relative to `root`: from a JSON file, or "folders" for class folders."""
    if source == "folders":
        return {str(path.relative_to(root)): english_name(path.parent.name) for path in samples}
    try:
        return json.loads(Path(source).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"--expected {source}: not a readable JSON file of image paths to labels") from error


def check_answers(answers: dict[Path, object], labels: set[str]) -> None:
    """Every answer is a non-empty {label: probability} of known labels, probabilities in [0, 1], highest first."""
    for path, answer in answers.items():
        if not isinstance(answer, dict) or not answer:
            raise CheckFailed(f"{path.name}: the answer is not a label-to-probability object: {answer!r}")
        probabilities = list(answer.values())
        if not set(answer) <= labels:
            raise CheckFailed(f"{path.name}: unknown labels {sorted(set(answer) - labels)}")
        if not all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in probabilities) or sum(probabilities) > 1.001:
            raise CheckFailed(f"{path.name}: probabilities are not in [0, 1] or sum above 1: {probabilities}")
        if probabilities != sorted(probabilities, reverse=True):
            raise CheckFailed(f"{path.name}: labels are not ordered by probability")


def check_agreement(answers: dict[Path, dict], expected: dict[str, str], root: Path, minimum: float) -> None:
    """Top-1 labels agree with the expected ones on at least `minimum` of the images that have one."""
    compared = [(next(iter(answer)), expected[str(path.relative_to(root))]) for path, answer in answers.items()
                if str(path.relative_to(root)) in expected]  # fmt: skip
    if not compared:
        raise CheckFailed("the expected-labels file names none of the sample images")
    agreement = sum(got == want for got, want in compared) / len(compared)
    print(f"  top-1 agreement with the expected labels: {agreement:.1%} on {len(compared)} images")
    if agreement < minimum:
        raise CheckFailed(f"top-1 agreement {agreement:.1%} is below the required {minimum:.1%}")
