"""Classify images with a training run's model, without any server: top-k labels with probabilities."""

import argparse
import json
import sys
from pathlib import Path

import torch

from animals import cli, quantization
from animals.acceleration import InferenceModel
from animals.errors import BadInput, UserError
from animals.inference_settings import InferenceSettings
from animals.preprocessing import decode_image, eval_transform
from animals.run import check_run

FP32 = InferenceSettings(precision="fp32", channels_last=False)


class Predictor:
    """A run's model (or an unpacked archive's) with the serving preprocessing and, given, the archive's inference
    settings: the in-process reference for served answers."""

    def __init__(self, run: Path, device: str = "cpu", settings: InferenceSettings = FP32) -> None:
        weights = quantization.PROGRAM if settings.precision == "int8" else "model.pt"
        self.model = InferenceModel(check_run(run, weights), settings, device, max_batch=1)
        self.class_names = self.model.labels
        self.transform = eval_transform()

    def probabilities(self, image: bytes) -> torch.Tensor:
        return self.model(self.transform(decode_image(image)).unsqueeze(0))[0]

    def top1(self, image: bytes) -> str:
        """The most likely label."""
        return self.class_names[int(self.probabilities(image).argmax())]

    def top_k(self, image: bytes, k: int = 5) -> dict[str, float]:
        """The k most likely labels, highest first."""
        top = self.probabilities(image).topk(min(k, len(self.class_names)))
        pairs = zip(top.indices.tolist(), top.values.tolist(), strict=True)
        return {self.class_names[index]: round(probability, 6) for index, probability in pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.predict", description=__doc__)
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files to classify")
    parser.add_argument("--run", type=Path, required=True, help="training run folder (artifacts/RUN)")
    parser.add_argument("--top-k", type=int, default=5, help="how many labels to show (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image instead of a table")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        raise UserError("--top-k must be at least 1")
    predictor = Predictor(args.run)
    failures = 0
    for path in args.images:
        try:
            answer = predictor.top_k(path.read_bytes(), args.top_k)
        except (BadInput, OSError) as error:
            print(f"{path}: error: {error}", file=sys.stderr)
            failures += 1
            continue
        if args.json:
            print(json.dumps({"image": str(path), "top_k": answer}))
        else:
            print(path)
            for label, probability in answer.items():
                print(f"  {label:<12} {probability:7.2%}")
    return 1 if failures else 0


if __name__ == "__main__":
    cli.run(main)
