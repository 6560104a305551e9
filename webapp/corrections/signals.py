"""A deleted photo row takes its file with it; a deleted correction takes its photo (and so the photo's other
corrections): deleting in the admin removes the picture, which is what a user asking for deletion means."""

from django.db.models.signals import post_delete
from django.dispatch import receiver

from webapp.corrections import photos
from webapp.corrections.models import Correction, Photo


@receiver(post_delete, sender=Photo)
def delete_photo_file(sender, instance: Photo, **kwargs) -> None:
    photos.delete(instance.file_name)


@receiver(post_delete, sender=Correction)
def delete_corrected_photo(sender, instance: Correction, **kwargs) -> None:
    Photo.objects.filter(digest=instance.photo_id).delete()
