# The animals classifier on TorchServe. Build stage: Python dependencies and animals.mar. Runtime stage: a Java 17
# runtime, TorchServe, the archive and its config files, run as a non-root user. `make image` builds it (README:
# Deployment); Docker 23+ (BuildKit, buildx) is needed for the named `model` context. No `# syntax=` line: the
# built-in frontend reads this file, so nothing is pulled from a registry.
#
#   docker build --build-context model=artifacts/RUN -t animals .          # a trained run
#   docker build --build-context model=/dir/holding/ARCHIVE.mar+.json ...   # an archive of `make archive` (any precision)
#   docker build --build-context model=/dir/holding/vgg16.pth -t animals . # ImageNet zero-shot default, offline
#   docker build -t animals .                                              # zero-shot, weights downloaded at build
# BASE_IMAGE: Debian bookworm with python3 and venv; `make base-image` makes animals-base:bookworm from Debian's archive
# alone, python:3.11-slim-bookworm does where Docker Hub is reachable. TORCH_INDEX: an extra package index for torch
# (https://download.pytorch.org/whl/cpu: CPU-only wheels, 2 GB smaller); empty means PyPI alone.
ARG BASE_IMAGE=animals-base:bookworm

# An empty default for the `model` build context: replaced by --build-context model=...
FROM scratch AS model

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX=
ARG VERSION=1.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
WORKDIR /app
COPY requirements.txt ./
RUN pip install ${TORCH_INDEX:+--extra-index-url "${TORCH_INDEX}"} -r requirements.txt
# g++ and Python's headers: an int8 archive whose program was compiled ahead of time on a newer system (a newer C
# library than the image's) is compiled again here, for the image, so that its workers load it rather than compile it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ python3-dev \
    && rm -rf /var/lib/apt/lists/*
COPY animals/ animals/
COPY handler/ handler/
COPY serving/ serving/
COPY scripts/ scripts/
COPY webapp/ webapp/
COPY config.properties model-config.yaml metrics.yaml log4j2.xml ./
# TorchServe's home in the image: its config and the files it names, model store, logs and key file, in one folder a
# volume can hold; and the upload page's corrections folder (photos and SQLite database), another.
RUN python -m scripts.protos && mkdir -p serve/model_store data/corrections && cp config.properties metrics.yaml log4j2.xml serve/
RUN --mount=type=bind,from=model,target=/model \
    if [ -f /model/model.pt ]; then set -- --run /model; \
    elif ls /model/*.mar >/dev/null 2>&1; then set -- --install /model/*.mar; \
    elif [ -f /model/vgg16.pth ]; then export VGG16_WEIGHTS=/model/vgg16.pth; set -- --imagenet; \
    else set -- --imagenet; fi; \
    python -m scripts.archive --config serve/config.properties --version "${VERSION}" "$@"

FROM ${BASE_IMAGE} AS runtime
# Debian's security updates flow in at each rebuild: the packages are left unpinned on purpose. g++ and Python's
# headers: inductor compiles at worker start what was not compiled ahead of time for this CPU and torch (an int8
# archive's program built elsewhere; torch.compile's).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini g++ python3-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 torchserve
# OMP_WAIT_POLICY: as serving.server.WORKER_ENVIRONMENT gives `make serve`'s workers (KServe starts torchserve itself)
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --from=build --chown=10001:10001 /app /app
USER 10001
# inference, management, metrics, gRPC inference, gRPC management (config.properties)
EXPOSE 8080 8081 8082 7070 7071
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --start-interval=2s --retries=3 \
    CMD ["python", "-m", "scripts.server", "--config", "serve/config.properties", "health"]
# tini reaps zombies and passes `docker stop`'s SIGTERM to the start script, which stops TorchServe and every worker
# and exits 0.
ENTRYPOINT ["tini", "--"]
CMD ["python", "-m", "scripts.server", "--config", "serve/config.properties", "start", "--foreground", "--no-build", "--bind", "0.0.0.0"]
