"""The training augmentations, built on torchvision's transforms (serving needs only animals.preprocessing)."""

from torchvision import transforms

from animals.preprocessing import CROP_SIZE, IMAGENET_MEAN, IMAGENET_STD, RESIZE_SIZE

AUGMENTATIONS = ("crop", "whole")


def train_transform(augmentation: str = "crop") -> transforms.Compose:
    """The training augmentation. "crop": RandomResizedCrop(224), RandomRotation(15), RandomHorizontalFlip, for photos
    whose subject fills much of the frame (Animals-10). "whole": the evaluation framing and RandomHorizontalFlip, for
    pictures whose subject may be small and anywhere, which a random crop would often cut out."""
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, not {augmentation!r}")
    framing = (
        [transforms.RandomResizedCrop(CROP_SIZE), transforms.RandomRotation(15)]
        if augmentation == "crop"
        else [transforms.Resize(RESIZE_SIZE), transforms.CenterCrop(CROP_SIZE)]
    )
    return transforms.Compose(
        [
            *framing,
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
