"""Model versions through the management CLI over a real TorchServe: register, switch, scale, roll out, roll back,
restart; gRPC against REST; refused tokens; and the CLI's one-line errors."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from animals import cli
from scripts import manage
from serving.archive import build_archive, trained_run_source
from serving.client import GrpcClient, RestClient, TorchServeError
from serving.config import ServerConfig
from serving.server import start, stop
from tests.support import make_run, write_config
from training.predict import Predictor


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("version-runs")
    return {version: make_run(root / version, seed=seed) for version, seed in (("1.0", 1), ("2.0", 2))}


@pytest.fixture(scope="module")
def server(tmp_path_factory, runs) -> Iterator[ServerConfig]:
    """A TorchServe of its own (these tests change the default version), starting with version 1.0."""
    config = write_config(tmp_path_factory.mktemp("versions") / "server")
    build_archive(config.archive, trained_run_source(runs["1.0"]), config.model_name, "1.0")
    try:
        start(config, timeout_s=180)
        yield config
    finally:
        stop(config)


@pytest.fixture(scope="module")
def archive_v2(tmp_path_factory, runs, server) -> Path:
    """Version 2.0 built outside the model store, as a user would hand it to `register`."""
    return build_archive(tmp_path_factory.mktemp("built") / "v2.mar", trained_run_source(runs["2.0"]), "animals", "2.0")


def run_cli(capsys, config: ServerConfig, *arguments: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        cli.run(manage.main, ["--config", str(config.path), *arguments])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def rest(config: ServerConfig, token: str | None = None) -> RestClient:
    return RestClient(config, token)


def test_register_a_second_version_and_switch_the_default(capsys, server, runs, archive_v2, samples):
    code, out, _ = run_cli(capsys, server, "register", str(archive_v2), "--version", "2.0")
    assert code == 0 and "registered" in out
    photo = samples[5].read_bytes()
    expected = {version: Predictor(run).top_k(photo) for version, run in runs.items()}
    client = rest(server)
    for version in ("1.0", "2.0"):
        assert list(client.predict(photo, version)) == list(expected[version])
    assert list(client.predict(photo)) == list(expected["1.0"])

    code, out, _ = run_cli(capsys, server, "set-default", "2.0")
    assert code == 0 and '"2.0"' in out
    assert list(client.predict(photo)) == list(expected["2.0"])
    code, out, _ = run_cli(capsys, server, "list")
    assert "* animals 2.0" in out and "  animals 1.0" in out


def test_scale_is_reflected_by_describe(capsys, server, archive_v2):
    code, _, _ = run_cli(capsys, server, "scale", "1.0", "--min", "2", "--max", "2")
    assert code == 0
    code, out, _ = run_cli(capsys, server, "describe", "1.0")
    description = json.loads(out)[0]
    assert (description["minWorkers"], description["maxWorkers"], len(description["workers"])) == (2, 2, 2)
    run_cli(capsys, server, "scale", "1.0", "--min", "1", "--max", "1")


def test_grpc_answers_equal_rest_for_each_version(server, archive_v2, samples):
    grpc, http = GrpcClient(server), RestClient(server)
    assert grpc.ping() == "Healthy"
    for photo in (samples[0].read_bytes(), samples[77].read_bytes()):
        for version in ("1.0", "2.0", None):
            assert grpc.predict(photo, version) == http.predict(photo, version)
    assert {d["modelVersion"] for d in grpc.describe("all")} == {d["modelVersion"] for d in http.describe("all")}


def test_rollout_of_a_broken_archive_keeps_the_old_default(capsys, server, tmp_path, runs, samples):
    broken_run = make_run(tmp_path / "broken", seed=3)
    spec = json.loads((broken_run / "model.json").read_text())
    (broken_run / "model.json").write_text(json.dumps(spec | {"width": 0.125}))  # weights no longer fit the network
    broken = build_archive(tmp_path / "broken.mar", trained_run_source(broken_run), "animals", "3.0")
    before = rest(server).describe()[0]["modelVersion"]

    code, out, err = run_cli(capsys, server, "rollout", str(broken), "--images", str(samples[0].parent))
    assert code == 1
    assert "Registration failed" in out and "Unregistering 3.0" in out
    assert f"version {before} is still the default" in err and err.count("\n") == 1
    assert rest(server).describe()[0]["modelVersion"] == before
    assert "3.0" not in {d["modelVersion"] for d in rest(server).describe("all")}


def test_rollout_with_expected_labels_then_rollback(capsys, server, tmp_path, runs, samples):
    images = samples[0].parent
    new = build_archive(tmp_path / "v4.mar", trained_run_source(runs["1.0"]), "animals", "4.0")
    reference = Predictor(runs["1.0"])
    expected = {path.name: reference.top1(path.read_bytes()) for path in images.iterdir()}
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    before = rest(server).describe()[0]["modelVersion"]

    code, out, _ = run_cli(
        capsys, server, "rollout", str(new), "--images", str(images), "--expected", str(tmp_path / "expected.json")
    )
    assert code == 0 and "top-1 agreement with the expected labels: 100.0%" in out
    assert rest(server).describe()[0]["modelVersion"] == "4.0"

    code, out, _ = run_cli(capsys, server, "rollback")
    assert code == 0 and f"from 4.0 to {before}" in out
    assert rest(server).describe()[0]["modelVersion"] == before


def test_restart_keeps_versions_and_default(server):
    before = rest(server).describe()[0]["modelVersion"]
    registered = {d["modelVersion"] for d in rest(server).describe("all")}
    stop(server)
    start(server, timeout_s=180)
    assert rest(server).describe()[0]["modelVersion"] == before
    assert {d["modelVersion"] for d in rest(server).describe("all")} == registered


@pytest.mark.parametrize("token", ["wrong-token", ""], ids=["wrong", "blank"])
def test_refused_tokens_over_rest_and_grpc(server, samples, token):
    photo = samples[0].read_bytes()
    for client in (RestClient(server, token or " "), GrpcClient(server, token or " ")):
        with pytest.raises(TorchServeError, match="InvalidKeyException"):
            client.predict(photo)
        with pytest.raises(TorchServeError, match="InvalidKeyException"):
            client.describe()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["describe", "9.9"], "404 ModelVersionNotFoundException"),
        (["unregister", "9.9"], "404 ModelVersionNotFoundException"),
        (["--token", "nope", "list"], "400 InvalidKeyException: the token was refused"),
        (["--grpc", "--token", "nope", "list"], "InvalidKeyException: the token was refused"),
        (["predict", "/no/such/photo.jpg"], "cannot read /no/such/photo.jpg"),
    ],
)
def test_cli_errors_are_one_line(capsys, server, arguments, message):
    code, _, err = run_cli(capsys, server, *arguments)
    assert code == 1 and err.count("\n") == 1 and message in err and "Traceback" not in err


def test_registering_the_same_version_twice_is_a_409(capsys, server, archive_v2):
    code, _, err = run_cli(capsys, server, "register", str(archive_v2))
    assert code == 1 and "409" in err and "already registered" in err


def test_cli_says_when_the_server_is_down(capsys, tmp_path):
    down = write_config(tmp_path / "down")
    for arguments in (["--token", "t", "list"], ["--token", "t", "--grpc", "list"]):
        code, _, err = run_cli(capsys, down, *arguments)
        assert code == 1 and "not reachable" in err and err.count("\n") == 1
