"""Train a VGG classifier on a folder of class folders (Animals-10 as downloaded, or any ImageFolder layout).

Shaped like torchvision's classification reference: get_args_parser, train_one_epoch, evaluate, main.
Each run writes its own folder under artifacts/: weights, model.json, index_to_name.json, split.json, metrics.json,
confusion_matrix.png, training_curves.png, and checkpoint.pt for --resume.
"""

import argparse
import json
import random
import time
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from animals import cli
from animals.errors import UserError
from animals.labels import write_index_to_name
from animals.model import VGG_LAYOUTS, ModelSpec, build_model
from animals.preprocessing import eval_transform
from animals.pretrained import load_imagenet_state_dict
from animals.run import ARTIFACTS_DIR, Split
from training.augmentation import AUGMENTATIONS, train_transform
from training.data import ImageDataset, LoadedBatch, as_input, make_split, photos_per_folder, skip_unreadable
from training.features import cached_loader, extract_features
from training.progress import EpochResult, Progress
from training.report import write_report

RESUMED_ARGUMENTS = ("epochs",)
REPLACED_LAYER = "classifier.6."  # the last layer, sized for the classes found


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        nargs="+",
        help="Animals-10 download, a folder of class folders, or train/valid/test; several are trained on together",
    )
    parser.add_argument(
        "--arch", choices=sorted(VGG_LAYOUTS), default="vgg16", help="VGG variant (default: %(default)s)"
    )
    parser.add_argument(
        "--weights",
        default="imagenet",
        metavar="imagenet|none|PATH",
        help="start from ImageNet weights, from scratch, or from a state dict such as a run's model.pt",
    )
    parser.add_argument("--epochs", type=int, default=5, help="number of epochs (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--unfreeze", action="store_true", help="fine-tune the convolutional features too")
    parser.add_argument(
        "--cache-features", action="store_true", help="frozen features: compute them once, train the head"
    )
    parser.add_argument(
        "--augment",
        choices=AUGMENTATIONS,
        default="crop",
        help="crop: random crops and rotations; whole: keep the whole picture, flip only (default: %(default)s)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="data loading processes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the split and training (default: %(default)s)")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier; <1 for quick experiments")
    parser.add_argument("--output", type=Path, help="run folder (default: artifacts/ARCH-TIMESTAMP)")
    parser.add_argument("--resume", type=Path, metavar="RUN", help="continue a stopped run from its checkpoint")
    return parser


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[LoadedBatch],
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    scaler: torch.amp.GradScaler,
    description: str,
) -> EpochResult:
    model.train()
    total_loss, correct, seen, unreadable = 0.0, 0, 0, []
    progress = tqdm(batches, desc=description, leave=False, unit="batch", disable=None)
    for batch in progress:
        unreadable += batch.unreadable
        if not len(batch.labels):
            continue
        images, labels = as_input(batch.images, device), batch.labels.to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
            logits = model(images)
            loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += len(labels)
        progress.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.1%}")
    return EpochResult(total_loss / max(seen, 1), correct / max(seen, 1), unreadable=unreadable)


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Iterable[LoadedBatch], device: torch.device, description: str) -> EpochResult:
    """Loss, accuracy and every prediction over a data set, in a fixed order."""
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    total_loss, predictions, labels, unreadable = 0.0, [], [], []
    for batch in tqdm(batches, desc=description, leave=False, unit="batch", disable=None):
        unreadable += batch.unreadable
        if not len(batch.labels):
            continue
        logits = model(as_input(batch.images, device)).float()
        total_loss += criterion(logits, batch.labels.to(device)).item()
        predictions.append(logits.argmax(dim=1).cpu())
        labels.append(batch.labels)
    predictions_all = torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)
    labels_all = torch.cat(labels) if labels else torch.empty(0, dtype=torch.long)
    accuracy = (predictions_all == labels_all).float().mean().item() if len(labels_all) else 0.0
    return EpochResult(total_loss / max(len(labels_all), 1), accuracy, predictions_all, labels_all, unreadable)


def image_loader(split: Split, part: str, train: bool, args: argparse.Namespace) -> DataLoader:
    transform = train_transform(args.augment) if train else eval_transform()
    dataset = ImageDataset(split.root, split.parts[part], transform)
    generator = torch.Generator().manual_seed(args.seed)
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=train,
        num_workers=args.workers,
        collate_fn=skip_unreadable,
        generator=generator,
        persistent_workers=args.workers > 0,
    )


def choose_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    return torch.device("cuda" if name in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


def create_model(args: argparse.Namespace, num_classes: int) -> tuple[nn.Module, ModelSpec]:
    """VGG with its last layer sized for the classes found, from ImageNet weights or from scratch."""
    spec = ModelSpec(arch=args.arch, num_classes=num_classes, width=args.width)
    model = build_model(spec)
    if args.weights != "none":
        pretrained = starting_weights(args.weights, args.arch, args.width)
        body = {key: value for key, value in pretrained.items() if not key.startswith(REPLACED_LAYER)}
        try:
            missing, unexpected = model.load_state_dict(body, strict=False)
        except RuntimeError as error:
            raise UserError(f"--weights {args.weights} does not fit --arch {args.arch} --width {args.width}") from error
        if unexpected or {key for key in missing if not key.startswith(REPLACED_LAYER)}:
            raise UserError(f"--weights {args.weights} is not a {args.arch} state dict in torchvision's layout")
    model.features.requires_grad_(args.unfreeze)
    return model, spec


def starting_weights(weights: str, arch: str, width: float) -> dict:
    """The state dict training starts from: ImageNet's (full width only) or one from a file."""
    if weights == "imagenet":
        if width != 1.0:
            raise UserError("--width below 1 needs --weights none or a file: ImageNet weights are full width")
        return load_imagenet_state_dict(arch)
    path = Path(weights)
    if not path.is_file():
        raise UserError(f"--weights {weights}: not 'imagenet', 'none' or an existing state dict file")
    return torch.load(path, map_location="cpu", weights_only=True)


def new_run(args: argparse.Namespace) -> tuple[argparse.Namespace, Path, Split]:
    if args.data_dir is None:
        raise UserError("--data-dir is needed (or --resume RUN)")
    if args.cache_features and args.unfreeze:
        raise UserError("--cache-features needs frozen features; drop --unfreeze or --cache-features")
    split = make_split(args.data_dir, args.seed)
    run = args.output or ARTIFACTS_DIR / f"{args.arch}-{datetime.now():%Y%m%d-%H%M%S}"
    return args, run, split


def start_run_folder(run: Path, split: Split, args: argparse.Namespace) -> None:
    """The run folder with its split and arguments: written only once the model exists, so that a run that cannot
    start (weights missing, say) leaves no half-written folder for later commands to pick up."""
    run.mkdir(parents=True, exist_ok=True)
    split.save(run / "split.json")
    (run / "args.json").write_text(json.dumps(vars(args), default=str, indent=2) + "\n")


def resumed_run(args: argparse.Namespace) -> tuple[argparse.Namespace, Path, Split]:
    run = args.resume
    if not (run / "checkpoint.pt").is_file():
        raise UserError(f"{run} has no checkpoint.pt to resume from")
    saved = json.loads((run / "args.json").read_text())
    for name in RESUMED_ARGUMENTS:
        if getattr(args, name) != get_args_parser().get_default(name):
            saved[name] = getattr(args, name)
    resumed = argparse.Namespace(**(saved | {"resume": run, "output": run}))
    saved_dirs = resumed.data_dir  # one folder in runs made before several were allowed
    folders = saved_dirs if isinstance(saved_dirs, list) else [saved_dirs]
    resumed.data_dir, resumed.output = [Path(folder) for folder in folders], Path(resumed.output)
    (run / "args.json").write_text(json.dumps(vars(resumed), default=str, indent=2) + "\n")
    return resumed, run, Split.load(run / "split.json")


def fit(
    model: nn.Module,
    split: Split,
    args: argparse.Namespace,
    device: torch.device,
    run: Path,
    progress: Progress,
    checkpoint: dict | None = None,
) -> None:
    """Train until args.epochs, keeping the best validation checkpoint as model.pt and the last as checkpoint.pt."""
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=args.lr, fused=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"] | {"T_max": args.epochs})
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    criterion = nn.CrossEntropyLoss()
    if args.cache_features:
        train_batches, valid_batches, unreadable = cache_features(model, split, args, device)
        progress.unreadable |= set(unreadable)
        trained = model.classifier
    else:
        train_batches = image_loader(split, "train", True, args)
        valid_batches = image_loader(split, "valid", False, args)
        trained = model

    for epoch in range(progress.epoch + 1, args.epochs + 1):
        started = time.perf_counter()
        label = f"epoch {epoch}/{args.epochs}"
        train = train_one_epoch(trained, train_batches, criterion, optimizer, device, scaler, f"{label} train")
        valid = evaluate(trained, valid_batches, device, f"{label} valid")
        scheduler.step()
        seconds = time.perf_counter() - started
        best = progress.record(epoch, train, valid, seconds)
        if best:
            torch.save(model.state_dict(), run / "model.pt")
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        saved_progress = asdict(progress) | {"unreadable": sorted(progress.unreadable)}
        torch.save(state | {"progress": saved_progress}, run / "checkpoint.pt")
        print(
            f"{label}  train loss {train.loss:.4f} acc {train.accuracy:.1%}  "
            f"valid loss {valid.loss:.4f} acc {valid.accuracy:.1%}  {seconds:.1f}s{'  (best, saved)' if best else ''}"
        )


def load_checkpoint(run: Path, model: nn.Module) -> tuple[Progress, dict]:
    """Load the last checkpoint's weights into `model`; return how far the run got, and the checkpoint."""
    checkpoint = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    progress = Progress(**checkpoint["progress"])
    progress.unreadable = set(progress.unreadable)
    print(f"Resuming after epoch {progress.epoch}")
    return progress, checkpoint


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    args, run, split = resumed_run(args) if args.resume else new_run(args)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = choose_device(args.device)
    model, spec = create_model(args, len(split.class_names))
    if not args.resume:
        start_run_folder(run, split, args)
    counts = {part: len(items) for part, items in split.parts.items()}
    print(f"Run {run}: {len(split.class_names)} classes, {counts} images, {args.arch} on {device}")
    sources = photos_per_folder(split, args.data_dir)
    for folder, classes in sources.items():
        print(f"  from {folder}: {sum(classes.values())} photos ({', '.join(f'{k} {v}' for k, v in classes.items())})")
    spec.save(run / "model.json")
    write_index_to_name(split.class_names, run / "index_to_name.json")
    progress, checkpoint = load_checkpoint(run, model) if args.resume else (Progress(), None)
    fit(model.to(device, memory_format=torch.channels_last), split, args, device, run, progress, checkpoint)

    model.load_state_dict(torch.load(run / "model.pt", map_location=device, weights_only=True))
    test = evaluate(model, image_loader(split, "test", False, args), device, "test")
    progress.unreadable |= set(test.unreadable)
    write_report(run, split, args, progress, test, sources)
    best = f"best valid {progress.best_valid_accuracy:.1%} at epoch {progress.best_epoch}"
    print(f"Test accuracy {test.accuracy:.1%} ({best})")
    if progress.unreadable:
        print(f"Skipped {len(progress.unreadable)} unreadable file(s), listed in {run / 'metrics.json'}")
    print(f"Wrote {run}; serve it with: make stop && make serve RUN={run}")
    return 0


def cache_features(
    model: nn.Module, split: Split, args: argparse.Namespace, device: torch.device
) -> tuple[DataLoader, DataLoader, list[str]]:
    """Run the frozen convolutional part once per image (no augmentation); the head then trains on the cache."""
    started = time.perf_counter()
    train, train_unreadable = extract_features(model, image_loader(split, "train", False, args), device, "cache train")
    valid, valid_unreadable = extract_features(model, image_loader(split, "valid", False, args), device, "cache valid")
    print(f"Cached features of {len(train) + len(valid)} images in {time.perf_counter() - started:.1f}s")
    generator = torch.Generator().manual_seed(args.seed)
    return (
        cached_loader(train, args.batch_size, shuffle=True, generator=generator),
        cached_loader(valid, args.batch_size, shuffle=False),
        train_unreadable + valid_unreadable,
    )


if __name__ == "__main__":
    cli.run(main)
