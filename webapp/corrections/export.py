"""Corrected photos as class folders for training: train/<label>/ and check/<label>/, each photo under its latest
label. Which side a photo falls on depends only on its digest, so a photo used for training is never in the check
set of a later export (rollout scores candidates on check/)."""

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from animals.errors import UserError
from webapp.corrections import photos
from webapp.corrections.models import Photo

MANIFEST = "export.json"
PARTS = ("train", "check")


@dataclass
class Exported:
    folder: Path
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: {part: {} for part in PARTS})
    missing: list[str] = field(default_factory=list)


def in_check_set(digest: str, check_share: float) -> bool:
    return int(digest[:8], 16) / 2**32 < check_share


def export(folder: Path, check_share: float = 0.2, since: datetime | None = None) -> Exported:
    """Write every kept photo (corrected at or after `since`, when given) into `folder`, replacing an earlier export
    there; a folder that holds anything else is refused."""
    prepare(folder)
    exported = Exported(folder)
    kept = Photo.objects.order_by("digest")
    if since is not None:
        kept = kept.filter(corrections__created__gte=since).distinct()
    for photo in kept:
        part = "check" if in_check_set(photo.digest, check_share) else "train"
        source = photos.path_of(photo.file_name)
        if not source.is_file():
            exported.missing.append(photo.digest)
            continue
        target = folder / part / photo.label / photo.file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        exported.counts[part][photo.label] = exported.counts[part].get(photo.label, 0) + 1
    manifest = {"check_share": check_share, "since": since.isoformat() if since else None, "counts": exported.counts}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return exported


def prepare(folder: Path) -> None:
    if folder.exists() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
        raise UserError(f"{folder} is not empty and holds no earlier export: name a new folder")
    for part in PARTS:
        shutil.rmtree(folder / part, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
