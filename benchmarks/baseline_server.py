"""The baseline peer: a minimal per-request server of the kind the seed project builds, kept only to compare with.

FastAPI + uvicorn, the model loaded once, PIL preprocessing, batch size 1, eager fp32, one request at a time.
Run as `python -m benchmarks.baseline_server RUN_DIR PORT`, then POST raw image bytes to /predict.
"""

import sys
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI, Request

from animals.preprocessing import decode_image, eval_transform
from training.run import load_run_model


def create_app(run: Path) -> FastAPI:
    app = FastAPI()
    model, class_names = load_run_model(run, "cpu")
    transform = eval_transform()

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, float]:
        image = transform(decode_image(await request.body())).unsqueeze(0)
        with torch.inference_mode():
            probabilities = model(image).softmax(dim=1)[0]
        top = probabilities.topk(5)
        return {class_names[i]: p for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)}

    return app


if __name__ == "__main__":
    uvicorn.run(create_app(Path(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
