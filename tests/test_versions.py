"""Model versions over a real TorchServe: register, switch, scale, roll out (and refuse to), roll back, unregister,
restart; what a version label means; gRPC against REST; refused tokens; the CLI's one-line errors.

Each test starts from the same state (version 1.0 alone, the default, one worker) and puts it back afterwards."""

import json
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from animals import cli
from animals.errors import UserError
from scripts import manage
from serving import archive as archive_module
from serving.archive import trained_run_source
from serving.client import GrpcClient, RestClient, TorchServeError
from serving.config import MODEL_CONFIG, ServerConfig
from serving.history import HISTORY_FILE
from serving.publish import publish
from serving.record import record_path
from serving.server import start, stop
from serving.store import remove_archive
from tests.support import REPO_ROOT, SAMPLE_DIR, archive_of, make_run, serve, write_config
from training.predict import Predictor

BASELINE = "1.0"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("version-runs")
    return {name: make_run(root / name, seed=seed) for name, seed in (("first", 1), ("second", 2), ("third", 3))}


@pytest.fixture(scope="module")
def server(tmp_path_factory, runs) -> Iterator[ServerConfig]:
    """A TorchServe of its own (these tests change the default version), serving the first run as 1.0."""
    config = write_config(tmp_path_factory.mktemp("versions") / "server")
    try:
        assert serve(config, runs["first"]) == BASELINE
        yield config
    finally:
        stop(config)


@pytest.fixture(autouse=True)
def baseline(request) -> Iterator[None]:
    """After each test that uses the server: 1.0 alone, the default, its workers as configured, no other archive in
    the store."""
    yield
    if "server" not in request.fixturenames:
        return
    config = request.getfixturevalue("server")
    client = RestClient(config)
    if client.default_version() != BASELINE:
        client.set_default(BASELINE)
    for version in client.versions() - {BASELINE}:
        client.unregister(version)
    workers = yaml.safe_load(MODEL_CONFIG.read_text())
    client.scale(BASELINE, workers["minWorkers"], workers["maxWorkers"])
    for archive in config.model_store.glob("*.mar"):
        if archive.name != config.archive(BASELINE).name:
            remove_archive(config, archive.name)
    (config.model_store / HISTORY_FILE).unlink(missing_ok=True)


def run_cli(capsys, config: ServerConfig, *arguments: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        cli.run(manage.main, ["--config", str(config.path), *arguments])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def test_register_a_second_version_and_switch_the_default(capsys, server, runs, samples, tmp_path):
    archive = archive_of(runs["second"], tmp_path / "animals-2.0.mar", "2.0")
    code, out, _ = run_cli(capsys, server, "register", str(archive), "--version", "2.0", "--workers", "1")
    assert code == 0 and "registered" in out and server.archive("2.0").is_file()
    described = RestClient(server).describe("2.0")[0]  # the archive asks for two: the count given is what serves
    assert (described["minWorkers"], described["maxWorkers"], len(described["workers"])) == (1, 1, 1)
    assert "(1 worker)" in out
    photo = samples[5].read_bytes()
    expected = {version: Predictor(runs[name]).top_k(photo) for version, name in (("1.0", "first"), ("2.0", "second"))}
    client = RestClient(server)
    for version in ("1.0", "2.0"):
        assert list(client.predict(photo, version)) == list(expected[version])
    assert list(client.predict(photo)) == list(expected["1.0"])

    code, out, _ = run_cli(capsys, server, "set-default", "2.0")
    assert code == 0 and '"2.0"' in out
    assert list(client.predict(photo)) == list(expected["2.0"])
    code, out, _ = run_cli(capsys, server, "list")
    assert "* animals 2.0" in out and "  animals 1.0" in out


def test_scale_is_reflected_by_describe(capsys, server):
    code, _, _ = run_cli(capsys, server, "scale", "1.0", "--min", "3", "--max", "3")
    assert code == 0
    code, out, _ = run_cli(capsys, server, "describe", "1.0")
    description = json.loads(out)[0]
    assert (description["minWorkers"], description["maxWorkers"], len(description["workers"])) == (3, 3, 3)
    assert description["archiveRecord"]["precision"] == "auto" and description["archiveRecord"]["version"] == "1.0"


def test_grpc_answers_equal_rest_for_each_version(server, runs, samples):
    version, _ = publish(server, trained_run_source(runs["second"]), "2.0")
    grpc, http = GrpcClient(server), RestClient(server)
    http.register(server.archive(version).name, 1, None, None)
    assert grpc.ping() == "Healthy"
    for photo in (samples[0].read_bytes(), samples[77].read_bytes()):
        for version in ("1.0", "2.0", None):
            assert grpc.predict(photo, version) == http.predict(photo, version)
    assert grpc.versions() == http.versions() == {"1.0", "2.0"}


def test_handler_metrics_count_each_version_apart(server, runs, samples):
    """The rollout section's check: AnimalsPredictedLabel{ModelVersion="2.0"} moves with 2.0's answers alone."""
    client = RestClient(server)
    version, _ = publish(server, trained_run_source(runs["second"]), "2.0")
    client.register(server.archive(version).name, 1, None, None)
    before = predicted_by_version(client)
    for photo in samples[:3]:
        client.predict(photo.read_bytes(), "2.0")
    client.predict(samples[3].read_bytes(), "1.0")
    after = wait_for_metrics(client, before, {"1.0": 1, "2.0": 3})
    assert {version: after.get(version, 0) - before.get(version, 0) for version in ("1.0", "2.0")} == {
        "1.0": 1,
        "2.0": 3,
    }


def predicted_by_version(client: RestClient) -> dict[str, float]:
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(client.metrics()):
        if family.name == "AnimalsPredictedLabel":
            for sample in family.samples:
                version = sample.labels["ModelVersion"]
                counts[version] = counts.get(version, 0) + sample.value
    return counts


def wait_for_metrics(client: RestClient, before: dict, moved: dict, timeout_s: float = 15) -> dict[str, float]:
    """Scrape until the counters moved as much (the handler's metrics reach the frontend a moment after the answer)."""
    deadline = time.monotonic() + timeout_s
    while True:
        after = predicted_by_version(client)
        if all(after.get(v, 0) - before.get(v, 0) >= n for v, n in moved.items()) or time.monotonic() > deadline:
            return after
        time.sleep(0.2)


# Rollout: every way it stops leaves the old default serving and no new version behind.


def assert_rollout_stopped(capsys, server: ServerConfig, archive: Path, *options: str) -> str:
    code, out, err = run_cli(capsys, server, "rollout", str(archive), "--images", str(SAMPLE_DIR), *options)
    assert code == 1
    assert err == f"error: rollout of version 3.0 stopped; version {BASELINE} is still the default\n"
    client = RestClient(server)
    assert client.default_version() == BASELINE and client.versions() == {BASELINE}
    assert not server.archive("3.0").exists(), "a stopped rollout leaves its archive in the store"
    return out


def test_rollout_of_an_archive_whose_workers_cannot_start(capsys, server, tmp_path):
    broken = make_run(tmp_path / "broken", seed=3)
    (broken / "model.pt").write_bytes(b"not a state dict")
    out = assert_rollout_stopped(capsys, server, archive_of(broken, tmp_path / "broken.mar", "3.0"))
    assert "Registration failed: TorchServe answered 500" in out and "Unregistering 3.0" in out


def test_rollout_of_a_version_that_answers_wrongly(capsys, server, runs, tmp_path):
    """Random weights agree with the photos' class folders on about one photo in ten."""
    archive = archive_of(runs["third"], tmp_path / "wrong.mar", "3.0")
    out = assert_rollout_stopped(capsys, server, archive, "--expected", "folders", "--min-agreement", "0.5")
    assert "Check failed: top-1 agreement" in out and "is below the required 50.0%" in out


MALFORMED_HANDLER = """
from ts.torch_handler.base_handler import BaseHandler


class ListHandler(BaseHandler):
    def initialize(self, context):
        self.initialized = True

    def handle(self, data, context):
        return [["cat", 0.9] for _ in data]
"""


def test_rollout_of_a_version_whose_answers_are_malformed(capsys, server, runs, tmp_path, monkeypatch):
    """An archive built with another handler, which answers a list where a label-to-probability object belongs."""
    handler = tmp_path / "list_handler.py"
    handler.write_text(MALFORMED_HANDLER)
    monkeypatch.setattr(archive_module, "HANDLER", handler)
    out = assert_rollout_stopped(capsys, server, archive_of(runs["third"], tmp_path / "malformed.mar", "3.0"))
    assert "Check failed:" in out and "the answer is not a label-to-probability object: ['cat', 0.9]" in out


def test_rollout_refuses_a_version_that_is_already_registered(capsys, server, runs, tmp_path):
    archive = archive_of(runs["first"], tmp_path / "again.mar", BASELINE)
    code, _, err = run_cli(capsys, server, "rollout", str(archive), "--images", str(SAMPLE_DIR))
    assert code == 1 and err == "error: version 1.0 is already registered: build the new archive with another VERSION\n"


def test_rollout_with_expected_labels_then_two_rollbacks_swap_back(capsys, server, runs, tmp_path):
    archive = archive_of(runs["first"], tmp_path / "v4.mar", "4.0")
    reference = Predictor(runs["first"])
    expected = {str(path.relative_to(SAMPLE_DIR)): reference.top1(path.read_bytes()) for path in SAMPLE_DIR.glob("*/*")}
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    code, out, _ = run_cli(
        capsys,
        server,
        "rollout",
        str(archive),
        "--images",
        str(SAMPLE_DIR),
        "--expected",
        str(tmp_path / "expected.json"),
    )
    assert code == 0 and "top-1 agreement with the expected labels: 100.0% on 160 images" in out
    client = RestClient(server)
    assert client.default_version() == "4.0"
    for expected_default in ("1.0", "4.0"):
        code, out, _ = run_cli(capsys, server, "rollback")
        assert code == 0 and client.default_version() == expected_default, out


def labelled_by(run: Path, folder: Path) -> Path:
    """The sample photos in class folders named after `run`'s own top-1 answers: a check set it gets all right."""
    reference = Predictor(run)
    for photo in SAMPLE_DIR.glob("*/*"):
        (folder / reference.top1(photo.read_bytes())).mkdir(parents=True, exist_ok=True)
        (folder / reference.top1(photo.read_bytes()) / f"{photo.parent.name}-{photo.name}").symlink_to(photo)
    return folder


def test_rollout_of_a_version_worse_on_the_check_set_is_refused_with_per_class_figures(capsys, server, runs, tmp_path):
    check_set = labelled_by(runs["first"], tmp_path / "check")
    archive = archive_of(runs["third"], tmp_path / "worse.mar", "3.0")
    out = assert_rollout_stopped(capsys, server, archive, "--check-set", str(check_set))
    assert "Scoring versions 1.0 and 3.0 on the check set (160 photos)" in out
    assert re.search(r"^all +160 +160 \(100\.0%\) +\d+ \(\d+\.\d%\)$", out, re.MULTILINE), out
    assert re.search(r"Check failed: version 3.0 answers \d+ of 160 photos right, version 1.0 160", out), out


def test_force_promotes_a_worse_version_and_says_what_it_overrides(capsys, server, runs, tmp_path):
    check_set = labelled_by(runs["first"], tmp_path / "check")
    archive = archive_of(runs["third"], tmp_path / "worse.mar", "3.0")
    arguments = ("rollout", str(archive), "--images", str(SAMPLE_DIR), "--check-set", str(check_set), "--force")
    code, out, _ = run_cli(capsys, server, *arguments)
    assert code == 0 and "--force: promoting version 3.0 although version 3.0 answers" in out
    assert RestClient(server).default_version() == "3.0"


# What a version label means.


def test_a_label_that_names_another_model_is_refused_naming_the_next_free_one(server, runs):
    with pytest.raises(UserError, match=r"^version 1.0 already names another model: build this one as VERSION=1.1$"):
        publish(server, trained_run_source(runs["second"]), "1.0")


def test_a_model_already_in_the_store_is_not_built_again_under_a_new_label(server, runs):
    version, _ = publish(server, trained_run_source(runs["second"]))
    with pytest.raises(UserError, match=rf"already holds this model as version {re.escape(version)} .*FORCE=1"):
        publish(server, trained_run_source(runs["second"]), "7.0")
    assert not server.archive("7.0").exists()
    forced, copy = publish(server, trained_run_source(runs["second"]), "7.0", new_label=True)
    try:
        assert forced == "7.0" and copy.is_file()
    finally:
        remove_archive(server, copy.name)


def test_the_same_inputs_build_the_same_bytes_deflated_and_are_not_rebuilt(server, runs, tmp_path, capsys, monkeypatch):
    first = archive_of(runs["second"], tmp_path / "a" / "animals-2.0.mar", "2.0")
    second = archive_of(runs["second"], tmp_path / "b" / "animals-2.0.mar", "2.0")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as packed:
        assert first.stat().st_size < 0.95 * sum(entry.file_size for entry in packed.infolist())
    version, archive = publish(server, trained_run_source(runs["second"]))
    built = archive.stat().st_mtime_ns
    monkeypatch.chdir(runs["second"].parent)
    assert publish(server, trained_run_source(Path(runs["second"].name))) == (version, archive)  # a relative spelling
    assert archive.stat().st_mtime_ns == built and "is up to date" in capsys.readouterr().out


def test_the_archive_of_a_registered_version_is_never_written_over(server, runs):
    archive = server.archive(BASELINE)
    before = (archive.read_bytes(), archive.stat().st_mtime_ns)
    assert publish(server, trained_run_source(runs["first"]), BASELINE) == (BASELINE, archive)
    with pytest.raises(UserError, match="already names another model"):
        publish(server, trained_run_source(runs["third"]), BASELINE)
    assert (archive.read_bytes(), archive.stat().st_mtime_ns) == before


def test_unregister_removes_the_archive_unless_asked_to_keep_it(capsys, server, runs):
    client = RestClient(server)
    for version, keep in (("2.0", False), ("2.1", True)):
        publish(server, trained_run_source(runs["second"]), version)
        client.register(server.archive(version).name, 1, None, None)
        code, out, _ = run_cli(capsys, server, "unregister", version, *(["--keep-archive"] if keep else []))
        assert code == 0 and version not in client.versions()
        assert server.archive(version).is_file() == keep and record_path(server.archive(version)).is_file() == keep
        assert (f"stays in {server.model_store}" if keep else f"removed {server.archive(version)}") in out
    publish(server, trained_run_source(runs["third"]), "2.0")  # 2.0 is free again: a rollout of it would be taken


def test_restart_keeps_versions_default_and_workers_and_names_what_it_leaves_out(capsys, server, runs):
    client = RestClient(server)
    for run, label in (("second", "2.0"), ("third", "3.0")):
        publish(server, trained_run_source(runs[run]), label)
        client.register_version(server.archive(label).name, label, 1)  # the archives ask for two workers
    client.set_default("2.0")
    stop(server)
    remove_archive(server, server.archive("3.0").name)
    capsys.readouterr()
    start(server, timeout_s=180)
    assert f"Version 3.0 is not restored: its archive is no longer in {server.model_store}" in capsys.readouterr().out
    assert client.default_version() == "2.0" and client.versions() == {"1.0", "2.0"}
    assert len(client.describe("2.0")[0]["workers"]) == 1 and client.describe("2.0")[0]["minWorkers"] == 1


@pytest.mark.parametrize("token", ["wrong-token", ""], ids=["wrong", "blank"])
def test_refused_tokens_over_rest_and_grpc(server, samples, token):
    photo = samples[0].read_bytes()
    for client in (RestClient(server, token or " "), GrpcClient(server, token or " ")):
        with pytest.raises(TorchServeError, match="InvalidKeyException") as refused:
            client.predict(photo)
        assert refused.value.kind == "token_refused"
        with pytest.raises(TorchServeError, match=r"read the current management key with `python -m scripts\.server"):
            client.describe()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["describe", "9.9"], "404 ModelVersionNotFoundException"),
        (["unregister", "9.9"], "404 ModelVersionNotFoundException"),
        (["--token", "nope", "list"], "400 InvalidKeyException: the token was refused"),
        (["--grpc", "--token", "nope", "list"], "InvalidKeyException: the token was refused"),
        (["predict", "/no/such/photo.jpg"], "cannot read /no/such/photo.jpg"),
        (["register", "9.9"], "no archive file 9.9 and no version 9.9 in the model store"),
        (["register", "9.9"], "VERSION=9.9`"),
    ],
)
def test_cli_errors_are_one_line(capsys, server, arguments, message):
    code, _, err = run_cli(capsys, server, *arguments)
    assert code == 1 and err.count("\n") == 1 and message in err and "Traceback" not in err


def test_registering_the_same_version_twice_is_a_409(capsys, server):
    code, _, err = run_cli(capsys, server, "register", str(server.archive(BASELINE)))
    assert code == 1 and "409" in err and "already registered" in err


def test_cli_says_when_the_server_is_down(capsys, tmp_path):
    down = write_config(tmp_path / "down")
    for arguments in (["--token", "t", "list"], ["--token", "t", "--grpc", "list"]):
        code, _, err = run_cli(capsys, down, *arguments)
        assert code == 1 and "not reachable" in err and err.count("\n") == 1


def test_the_commands_that_manage_torchserve_start_without_torch():
    """`make stop`, `make status`, `make token` and every manage command but `explain --output` run in a fraction of a
    second: torch's import (about 5 s on 2 cores) is left to the commands that run a model."""
    code = "import sys, scripts.manage, scripts.server; print(sorted({'torch', 'torchvision'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
