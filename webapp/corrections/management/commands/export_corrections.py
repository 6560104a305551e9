"""python -m webapp.manage export_corrections [DIR]: the corrected photos as class folders (DIR/train, DIR/check)."""

from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from animals.errors import UserError
from serving.config import CORRECTIONS_EXPORT
from webapp.corrections.export import export


class Command(BaseCommand):
    help = (
        "Write the corrected photos as class folders under DIR/train (for make train) and DIR/check (for rollout's "
        "check set), each photo under its latest label; replaces an earlier export in DIR."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "folder", type=Path, metavar="DIR", nargs="?", default=CORRECTIONS_EXPORT, help="(default: %(default)s)"
        )
        parser.add_argument("--since", type=date_or_time, help="only photos corrected at or after this ISO date")
        parser.add_argument(
            "--check-share", type=float, default=0.2, help="share of photos kept out for checking (default: 0.2)"
        )

    def handle(self, *args, folder: Path, since: datetime | None, check_share: float, **options) -> None:
        if not 0.0 <= check_share < 1.0:
            raise CommandError("--check-share must be at least 0 and below 1")
        self.stdout.write(f"Exporting corrected photos to {folder}")
        try:
            exported = export(folder, check_share, since)
        except UserError as error:
            raise CommandError(str(error)) from error
        for part, counts in exported.counts.items():
            described = ", ".join(f"{label} {count}" for label, count in sorted(counts.items())) or "none"
            self.stdout.write(f"  {folder / part}: {sum(counts.values())} photos ({described})")
        if exported.missing:
            self.stderr.write(f"  {len(exported.missing)} photo file(s) missing from the store, left out")


def date_or_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"not an ISO date or time: {text}") from error
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment
