# syntax=docker/dockerfile:1.7
# The animals classifier on TorchServe. Build stage: Python dependencies and animals.mar. Runtime stage: a Java 17
# runtime, TorchServe, the archive and config.properties, run as a non-root user.
#
#   docker build --build-context model=artifacts/RUN -t animals .          # a trained run
#   docker build --build-context model=/dir/holding/vgg16.pth -t animals . # ImageNet zero-shot default, offline
#   docker build -t animals .                                              # zero-shot, weights downloaded at build
#   CUDA: --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126
ARG BASE_IMAGE=python:3.11-slim-bookworm

# An empty default for the `model` build context: replaced by --build-context model=...
FROM scratch AS model

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG VERSION=1.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
WORKDIR /app
COPY requirements.txt ./
RUN pip install --extra-index-url "${TORCH_INDEX}" -r requirements.txt
COPY animals/ animals/
COPY handler/ handler/
COPY serving/ serving/
COPY scripts/ scripts/
COPY webapp/ webapp/
COPY config.properties model-config.yaml metrics.yaml ./
# TorchServe's home in the image: its config, model store, logs and key file, in one folder a volume can hold.
RUN python -m scripts.protos && mkdir -p serve && cp config.properties metrics.yaml serve/
RUN --mount=type=bind,from=model,target=/model \
    if [ -f /model/model.pt ]; then set -- --run /model; \
    elif [ -f /model/vgg16.pth ]; then export VGG16_WEIGHTS=/model/vgg16.pth; set -- --imagenet; \
    else set -- --imagenet; fi; \
    python -m scripts.archive --config serve/config.properties --version "${VERSION}" "$@"

FROM ${BASE_IMAGE} AS runtime
# Debian's security updates flow in at each rebuild: the packages are left unpinned on purpose.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 torchserve
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --from=build --chown=10001:10001 /app /app
USER 10001
# inference, management, metrics, gRPC inference, gRPC management (config.properties)
EXPOSE 8080 8081 8082 7070 7071
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 \
    CMD ["python", "-m", "scripts.server", "--config", "serve/config.properties", "health"]
# tini -g forwards SIGTERM to the whole process group, so `docker stop` stops TorchServe cleanly.
ENTRYPOINT ["tini", "-g", "--"]
CMD ["python", "-m", "scripts.server", "--config", "serve/config.properties", "start", "--foreground", "--no-build", "--bind", "0.0.0.0"]
