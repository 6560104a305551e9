# The commands users run. `make help` lists them.
PYTHON := .venv/bin/python
RUNTIME := .venv/.runtime-installed
DEV := .venv/.dev-installed
PEERS := .venv/peers/.installed
CONFIG ?= $(or $(TORCHSERVE_CONFIG),config.properties)
RUN ?=
IMAGENET ?=
DATA ?=
ARGS ?=
VERSION ?=
OUTPUT ?=
PRECISION ?=
WORKERS ?=
CALIBRATION ?=
MIN_AGREEMENT ?=
FORCE ?=
ARCHIVE ?=
IMAGE ?=
BASE_IMAGE ?=
TORCH_INDEX ?=

.DEFAULT_GOAL := help
.PHONY: help install serve stop status token archive train test test-fast mutants kserve web export-corrections lint format soak bench image base-image fuzz

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(RUNTIME): requirements.txt scripts/bootstrap.sh scripts/protos.py
	scripts/bootstrap.sh requirements.txt
	$(PYTHON) -m scripts.protos
	touch $@

# requirements-dev.txt includes requirements.txt: one install brings both (one resolution, not two).
$(DEV): requirements.txt requirements-dev.txt scripts/bootstrap.sh scripts/protos.py
	scripts/bootstrap.sh requirements-dev.txt
	$(PYTHON) -m scripts.protos
	touch $(RUNTIME) $@

$(PEERS): $(DEV) requirements-peers.txt scripts/peers_venv.sh
	scripts/peers_venv.sh requirements-peers.txt
	touch $@

install: $(RUNTIME) ## create .venv and install what serving needs

serve: $(RUNTIME) ## start TorchServe, wait until READY (RUN=... or IMAGENET=1, PRECISION=int8: serve that as the default; WORKERS=n)
	$(PYTHON) -m scripts.server --config $(CONFIG) start $(if $(RUN),--run $(RUN)) $(if $(IMAGENET),--imagenet) $(if $(PRECISION),--precision $(PRECISION)) $(if $(WORKERS),--workers $(WORKERS))

stop: $(RUNTIME) ## stop TorchServe
	$(PYTHON) -m scripts.server --config $(CONFIG) stop

status: $(RUNTIME) ## say whether TorchServe runs
	$(PYTHON) -m scripts.server --config $(CONFIG) status

token: $(RUNTIME) ## print the current inference token
	@$(PYTHON) -m scripts.server --config $(CONFIG) token

archive: $(RUNTIME) ## build model_store/animals-VERSION.mar (RUN=artifacts/RUN IMAGENET=1 VERSION=x.y OUTPUT=o.mar PRECISION=fp32 FORCE=1)
	$(PYTHON) -m scripts.archive --config $(CONFIG) $(if $(RUN),--run $(RUN)) $(if $(IMAGENET),--imagenet) $(if $(VERSION),--version $(VERSION)) $(if $(OUTPUT),--output $(OUTPUT)) $(if $(PRECISION),--precision $(PRECISION)) $(if $(CALIBRATION),--calibration $(CALIBRATION)) $(if $(MIN_AGREEMENT),--min-agreement $(MIN_AGREEMENT)) $(if $(FORCE),--new-label)

image: $(RUNTIME) ## build the container image (RUN=artifacts/RUN, ARCHIVE=model_store/x.mar or VGG16_WEIGHTS=; VERSION, IMAGE, BASE_IMAGE, TORCH_INDEX)
	$(PYTHON) -m scripts.image $(if $(RUN),--run $(RUN)) $(if $(ARCHIVE),--archive $(ARCHIVE)) $(if $(VERSION),--version $(VERSION)) $(if $(IMAGE),--tag $(IMAGE)) $(if $(BASE_IMAGE),--base-image $(BASE_IMAGE)) $(if $(TORCH_INDEX),--torch-index $(TORCH_INDEX))

base-image: ## make the image's base (animals-base:bookworm) from Debian's archive with debootstrap (root)
	scripts/base_image.sh $$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)

train: $(RUNTIME) ## train on a data folder (DATA=path/to/animals10 ARGS="--epochs 3 ...")
	$(if $(DATA),,$(error DATA is required: make train DATA=path/to/animals10))
	$(PYTHON) -m training.train --data-dir $(DATA) $(ARGS)

test: $(DEV) $(PEERS) ## install everything, then run the whole test suite
	scripts/ensure_package.sh chromium "command -v chromium" "the browser test"
	scripts/ensure_docker.sh
	scripts/ensure_package.sh postgresql "ls /usr/lib/postgresql/*/bin/initdb" "the PostgreSQL corrections tests"
	$(PYTHON) -m pytest -n 2 --dist loadscope --no-loadscope-reorder

test-fast: $(DEV) ## the tests that start no server, container or training run (under 2 minutes)
	$(PYTHON) -m pytest -n 2 --dist loadscope --no-loadscope-reorder -m "not server"

mutants: $(DEV) ## apply each break of tests/mutants.txt to a scratch copy and check that its tests catch it
	$(PYTHON) -m tests.mutants

kserve: $(RUNTIME) ## run deploy/kserve's config locally on loopback, as KServe's runtime does (PROTOCOL=v1|v2)
	$(PYTHON) -m scripts.kserve --config $(CONFIG) $(if $(PROTOCOL),--protocol $(PROTOCOL))

export-corrections: $(RUNTIME) ## the corrected photos as class folders: data/corrections-export/{train,check} (OUT=dir)
	$(PYTHON) -m webapp.manage export_corrections $(OUT)

web: $(RUNTIME) ## the upload page on http://127.0.0.1:8000, against the TorchServe of make serve
	$(PYTHON) -m webapp.serve

fuzz: $(DEV) ## fuzz the byte parsers (request bodies, KServe, images) with atheris, 60 s each (ARGS="--seconds 600")
	$(PYTHON) -m fuzz.run $(ARGS)

lint: $(DEV) ## ruff check and format check
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: $(DEV) ## ruff fix and format
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

soak: $(RUNTIME) ## soak the running server: 20,000 checked requests, photos and bad inputs (ARGS="--requests N")
	$(PYTHON) -m benchmarks.soak --config $(CONFIG) $(ARGS)

bench: $(PEERS) ## benchmark the running server: REST and gRPC levels, in-process ceiling, baseline (ARGS="--duration 20")
	.venv/peers/bin/python -m benchmarks.bench --config $(CONFIG) $(ARGS)
