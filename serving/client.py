"""The one client of TorchServe's inference and management APIs, over REST or gRPC behind the same calls.

Every answer that is not a success becomes one TorchServeError subclass named for what happened, with a one-line
message: the CLIs print it, the web page words it for people, the load tools count it by its `kind`. This is the only
module that sends requests to TorchServe.
"""

import json
import threading
from functools import cached_property

import requests

from animals.errors import UserError
from animals.payload import MODEL_VERSION_HEADER
from serving.config import ServerConfig, read_keys

TIMEOUT_S = 30
REGISTER_TIMEOUT_S = 600
KEY_COMMANDS = {"inference": "make token", "management": "python -m scripts.server token --kind management"}


class TorchServeError(UserError):
    """TorchServe answered with an error, or could not be reached.

    `kind` names what happened: "unreachable", "timeout", "token_refused", "bad_input" (the handler refused the
    image), "not_found" (unknown model or version), "conflict", "too_large", "unavailable" (no worker ready),
    "client_error" (another 4xx), "server_error" (a 5xx) or "not_json". `status` is the HTTP status, where there is one.
    """

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


STATUS_KINDS = {404: "not_found", 409: "conflict", 413: "too_large", 503: "unavailable"}
HANDLER_ERRORS = ("BadInput", "InternalServerError")  # the "type" of the handler's per-request error answers


def error_for(status: int, body: str, key_kind: str = "inference") -> TorchServeError:
    """The one mapping of TorchServe's error answers (an HTTP status and its body) to exceptions."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        document = {"message": body.strip() or "(no message)"}
    kind, message = document.get("type", ""), str(document.get("message", ""))
    if kind == "InvalidKeyException" or "InvalidKeyException" in message or "Token Authorization failed" in message:
        hint = f"read the current {key_kind} key with `{KEY_COMMANDS.get(key_kind, KEY_COMMANDS['inference'])}`"
        message = f"the token was refused: {hint} (keys expire, see README: Tokens)"
        return TorchServeError("token_refused", f"TorchServe answered {status} InvalidKeyException: {message}", status)
    if kind == "BadInput":
        return TorchServeError("bad_input", message, status)
    text = f"TorchServe answered {status} {kind}: {message}".replace("  ", " ")
    fallback = "client_error" if 400 <= status < 500 else "server_error"
    return TorchServeError(STATUS_KINDS.get(status, fallback), text, status)


class Tokens:
    """The bearer tokens to send: an explicit one, or TorchServe's key file read afresh on each call (keys renew)."""

    def __init__(self, config: ServerConfig, token: str | None = None) -> None:
        self.config = config
        self.token = token

    def bearer(self, kind: str) -> str:
        return f"Bearer {self.token or read_keys(self.config)[kind]}"


class Versions:
    """What both clients derive from `describe`."""

    def default_version(self) -> str:
        return self.describe()[0]["modelVersion"]

    def versions(self) -> set[str]:
        return {description["modelVersion"] for description in self.describe("all")}

    def register_version(
        self,
        archive: str,
        version: str,
        workers: int,
        batch_size: int | None = None,
        max_batch_delay: int | None = None,
    ) -> str:
        """Register an archive of the model store as `version`, served by exactly `workers` workers: TorchServe
        starts the archive's minWorkers whatever initial_workers asks, so the version is then scaled to the count."""
        status = self.register(archive, workers, batch_size, max_batch_delay)
        self.scale(version, workers, workers)
        return f"{status} ({workers} worker{'s' if workers != 1 else ''})"


class RestClient(Versions):
    """The model's REST endpoints. Thread-safe: each thread keeps its own connection."""

    def __init__(
        self,
        config: ServerConfig,
        token: str | None = None,
        management_url: str | None = None,
        inference_url: str | None = None,
        timeout: float = TIMEOUT_S,
    ) -> None:
        self.config = config
        self.model = config.model_name
        self.inference_url = inference_url or config.inference_url
        self.management_url = management_url or config.management_url
        self.tokens = Tokens(config, token)
        self.timeout = timeout
        self._local = threading.local()

    def ping(self) -> str:
        return self._json("GET", f"{self.inference_url}/ping", "inference")["status"]

    def predict(self, image: bytes, version: str | None = None) -> dict[str, float]:
        return self.predict_and_version(image, version)[0]

    def predict_and_version(self, image: bytes, version: str | None = None) -> tuple[dict[str, float], str]:
        """The labels, and the version that gave them (the handler's X-Model-Version header): what the default
        version answered, when no version is named."""
        url = self._model_url(self.inference_url, "predictions", version)
        response = self.send("POST", url, "inference", check=True, data=image)
        return self._decoded(response, url), response.headers.get(MODEL_VERSION_HEADER, version or "unknown")

    def explain(self, image: bytes, version: str | None = None, label: str | None = None) -> dict:
        """The Grad-CAM explanation of the top-1 label, or of `label` (see the README's Explanations)."""
        url = self._model_url(self.inference_url, "explanations", version)
        headers = {"Authorization": self.tokens.bearer("inference")} | ({"X-Label": label} if label else {})
        return self._json("POST", url, "inference", data=image, headers=headers)

    def describe(self, version: str | None = None) -> list[dict]:
        return self._json("GET", self._model_url(self.management_url, "models", version))

    def register(self, archive: str, workers: int, batch_size: int | None, max_batch_delay: int | None) -> str:
        params = {"url": archive, "model_name": self.model, "initial_workers": workers, "synchronous": "true"}
        if batch_size is not None:
            params["batch_size"] = batch_size
        if max_batch_delay is not None:
            params["max_batch_delay"] = max_batch_delay
        url = f"{self.management_url}/models"
        return self._json("POST", url, params=params, timeout=REGISTER_TIMEOUT_S)["status"]

    def scale(self, version: str | None, min_workers: int, max_workers: int) -> str:
        params = {"min_worker": min_workers, "max_worker": max_workers, "synchronous": "true"}
        url = self._model_url(self.management_url, "models", version)
        return self._json("PUT", url, params=params, timeout=REGISTER_TIMEOUT_S)["status"]

    def set_default(self, version: str) -> str:
        return self._json("PUT", f"{self._model_url(self.management_url, 'models', version)}/set-default")["status"]

    def unregister(self, version: str) -> str:
        return self._json("DELETE", self._model_url(self.management_url, "models", version))["status"]

    def renew_key(self, kind: str) -> None:
        """Ask for a new inference or management key (authorised by the API key); TorchServe rewrites its key file."""
        self.send("POST", f"{self.management_url}/token", "API", check=True, params={"type": kind})

    def metrics(self) -> str:
        """The Prometheus text of the metrics API (which takes no token in TorchServe 0.12)."""
        return self.send("GET", f"{self.config.metrics_url}/metrics", check=True).text

    def send(
        self, method: str, url: str, key: str | None = None, timeout: float | None = None, check: bool = False, **kwargs
    ) -> requests.Response:
        """One request as given, with `key`'s token unless headers are given; the response as it came, unless
        `check` turns an error answer into its TorchServeError."""
        timeout = timeout or self.timeout
        headers = kwargs.pop("headers", None)
        if headers is None:
            headers = {"Authorization": self.tokens.bearer(key)} if key else {}
        try:
            response = self._session.request(method, url, headers=headers, timeout=timeout, **kwargs)
        except requests.ConnectionError as error:
            message = f"TorchServe is not reachable at {url}: is it running? (`make serve`)"
            raise TorchServeError("unreachable", message) from error
        except requests.Timeout as error:
            message = f"TorchServe did not answer {method} {url} within {timeout:.0f} s"
            raise TorchServeError("timeout", message) from error
        except requests.RequestException as error:
            raise TorchServeError("unreachable", f"cannot call {url}: {error}") from error
        if check and response.status_code >= 400:
            raise error_for(response.status_code, response.text, key or "inference")
        return response

    def _json(self, method: str, url: str, key: str = "management", **kwargs) -> object:
        return self._decoded(self.send(method, url, key, check=True, **kwargs), url)

    @staticmethod
    def _decoded(response: requests.Response, url: str) -> object:
        try:
            return response.json()
        except ValueError as error:
            message = f"TorchServe answered {url} with something that is not JSON"
            raise TorchServeError("not_json", message, response.status_code) from error

    def _model_url(self, base: str, path: str, version: str | None) -> str:
        return f"{base}/{path}/{self.model}" + (f"/{version}" if version else "")

    @property
    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session


# gRPC status codes as the HTTP statuses TorchServe mapped them from (GRPCUtils.getGRPCStatusCode), so that one
# mapping names both protocols' errors.
GRPC_STATUSES = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 413,
    "FAILED_PRECONDITION": 400,
    "UNAVAILABLE": 503,
    "INTERNAL": 500,
    "UNKNOWN": 500,
}
UNREACHABLE_DETAILS = ("failed to connect", "Connection refused", "DNS resolution failed", "Socket closed")


class GrpcClient(Versions):
    """The same calls over TorchServe's gRPC APIs, the token as `authorization` metadata. Thread-safe."""

    def __init__(self, config: ServerConfig, token: str | None = None) -> None:
        import grpc  # only the gRPC client needs it

        self._grpc = grpc
        self.config = config
        self.model = config.model_name
        self.tokens = Tokens(config, token)
        host = config.properties.get("grpc_inference_address", "127.0.0.1")
        management_host = config.properties.get("grpc_management_address", "127.0.0.1")
        self.inference_target = f"{host}:{config.properties['grpc_inference_port']}"
        self.management_target = f"{management_host}:{config.properties['grpc_management_port']}"

    @cached_property
    def _stubs(self):
        try:
            from torchserve_grpc import inference_pb2, inference_pb2_grpc, management_pb2, management_pb2_grpc
        except ImportError as missing:
            raise UserError(
                "the gRPC stubs are not generated: run `make install` (or `python -m scripts.protos`)"
            ) from missing
        inference = inference_pb2_grpc.InferenceAPIsServiceStub(self._grpc.insecure_channel(self.inference_target))
        management = management_pb2_grpc.ManagementAPIsServiceStub(self._grpc.insecure_channel(self.management_target))
        return inference_pb2, management_pb2, inference, management

    def ping(self) -> str:
        from google.protobuf import empty_pb2

        return json.loads(self._call("Ping", empty_pb2.Empty(), "inference").health)["status"]

    def predict(self, image: bytes, version: str | None = None) -> dict[str, float]:
        inference_pb2 = self._stubs[0]
        request = inference_pb2.PredictionsRequest(
            model_name=self.model, model_version=version or "", input={"data": image}
        )
        answer = self._call("Predictions", request, "inference").prediction
        document = _json_or_none(answer)
        if isinstance(document, dict) and document.get("type") in HANDLER_ERRORS:
            # TorchServe's gRPC frontend passes a handler's per-request error status on as a successful reply.
            raise error_for(int(document.get("code", 400)), answer.decode())
        if document is None:
            raise TorchServeError("not_json", "TorchServe's gRPC prediction is not JSON")
        return document

    def explain(self, image: bytes, version: str | None = None, label: str | None = None) -> dict:
        raise TorchServeError("client_error", "TorchServe's gRPC API has no explanations: explain over REST")

    def describe(self, version: str | None = None) -> list[dict]:
        request = self._stubs[1].DescribeModelRequest(model_name=self.model, model_version=version or "")
        return self._management("DescribeModel", request)

    def register(self, archive: str, workers: int, batch_size: int | None, max_batch_delay: int | None) -> str:
        request = self._stubs[1].RegisterModelRequest(
            url=archive,
            model_name=self.model,
            initial_workers=workers,
            synchronous=True,
            batch_size=batch_size or 0,
            max_batch_delay=max_batch_delay or 0,
        )
        return self._management("RegisterModel", request, REGISTER_TIMEOUT_S)["status"]

    def scale(self, version: str | None, min_workers: int, max_workers: int) -> str:
        request = self._stubs[1].ScaleWorkerRequest(
            model_name=self.model, model_version=version or "", min_worker=min_workers, max_worker=max_workers,
            synchronous=True,
        )  # fmt: skip
        return self._management("ScaleWorker", request, REGISTER_TIMEOUT_S)["status"]

    def set_default(self, version: str) -> str:
        request = self._stubs[1].SetDefaultRequest(model_name=self.model, model_version=version)
        return self._management("SetDefault", request)["status"]

    def unregister(self, version: str) -> str:
        request = self._stubs[1].UnregisterModelRequest(model_name=self.model, model_version=version)
        return self._management("UnregisterModel", request)["status"]

    def _management(self, method: str, request, timeout: float = TIMEOUT_S) -> object:
        return json.loads(self._call(method, request, "management", timeout).msg)

    def _call(self, method: str, request, key: str, timeout: float = TIMEOUT_S):
        stub = self._stubs[2] if key == "inference" else self._stubs[3]
        metadata = [("authorization", self.tokens.bearer(key))]
        try:
            return getattr(stub, method)(request, metadata=metadata, timeout=timeout)
        except self._grpc.RpcError as error:
            raise self._error(error, key, timeout) from error

    def _error(self, error, key: str, timeout: float) -> TorchServeError:
        code, details = error.code(), error.details() or ""
        target = self.inference_target if key == "inference" else self.management_target
        if code == self._grpc.StatusCode.UNAVAILABLE and any(text in details for text in UNREACHABLE_DETAILS):
            message = f"TorchServe's gRPC port {target} is not reachable: is it running? (`make serve`)"
            return TorchServeError("unreachable", message)
        if code == self._grpc.StatusCode.DEADLINE_EXCEEDED:
            return TorchServeError("timeout", f"TorchServe did not answer over gRPC ({target}) within {timeout:.0f} s")
        message = details.removesuffix("\norg.pytorch.serve.http.InternalServerException").strip()
        body = message if message.startswith("{") else json.dumps({"type": code.name, "message": message})
        return error_for(GRPC_STATUSES.get(code.name, 500), body, key)


def _json_or_none(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return None


def connect(config: ServerConfig, grpc: bool = False, token: str | None = None, management_url: str | None = None):
    """The client for `config`'s server: REST by default, gRPC when asked."""
    return GrpcClient(config, token) if grpc else RestClient(config, token, management_url)
