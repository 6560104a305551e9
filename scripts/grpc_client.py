"""TorchServe's gRPC inference and management APIs for one model, the same calls as the REST client."""

import json

import grpc
from google.protobuf import empty_pb2

from animals.errors import UserError
from scripts.rest_client import REGISTER_TIMEOUT_S, TIMEOUT_S, TOKEN_HINT, Tokens, TorchServeError
from scripts.settings import ServerConfig

try:
    from torchserve_grpc import inference_pb2, inference_pb2_grpc, management_pb2, management_pb2_grpc
except ImportError as missing:
    raise UserError("the gRPC stubs are not generated: run `make install` (or `python -m scripts.protos`)") from missing


class GrpcClient:
    """The model's gRPC endpoints on TorchServe's standard gRPC ports, with the token as `authorization` metadata."""

    def __init__(self, config: ServerConfig, tokens: Tokens) -> None:
        self.model = config.model_name
        self.tokens = tokens
        host = config.properties.get("grpc_inference_address", "127.0.0.1")
        management_host = config.properties.get("grpc_management_address", "127.0.0.1")
        self.inference_target = f"{host}:{config.properties['grpc_inference_port']}"
        self.management_target = f"{management_host}:{config.properties['grpc_management_port']}"
        self.inference = inference_pb2_grpc.InferenceAPIsServiceStub(grpc.insecure_channel(self.inference_target))
        self.management = management_pb2_grpc.ManagementAPIsServiceStub(grpc.insecure_channel(self.management_target))

    def ping(self) -> str:
        return json.loads(self._call(self.inference.Ping, empty_pb2.Empty(), "inference").health)["status"]

    def predict(self, image: bytes, version: str | None = None) -> dict[str, float]:
        request = inference_pb2.PredictionsRequest(
            model_name=self.model, model_version=version or "", input={"data": image}
        )
        return json.loads(self._call(self.inference.Predictions, request, "inference").prediction)

    def describe(self, version: str | None = None) -> list[dict]:
        request = management_pb2.DescribeModelRequest(model_name=self.model, model_version=version or "")
        return self._management(self.management.DescribeModel, request)

    def register(self, archive: str, workers: int, batch_size: int | None, max_batch_delay: int | None) -> str:
        request = management_pb2.RegisterModelRequest(
            url=archive,
            model_name=self.model,
            initial_workers=workers,
            synchronous=True,
            batch_size=batch_size or 0,
            max_batch_delay=max_batch_delay or 0,
        )
        return self._management(self.management.RegisterModel, request, REGISTER_TIMEOUT_S)["status"]

    def scale(self, version: str | None, min_workers: int, max_workers: int) -> str:
        request = management_pb2.ScaleWorkerRequest(
            model_name=self.model, model_version=version or "", min_worker=min_workers, max_worker=max_workers,
            synchronous=True,
        )  # fmt: skip
        return self._management(self.management.ScaleWorker, request, REGISTER_TIMEOUT_S)["status"]

    def set_default(self, version: str) -> str:
        request = management_pb2.SetDefaultRequest(model_name=self.model, model_version=version)
        return self._management(self.management.SetDefault, request)["status"]

    def unregister(self, version: str) -> str:
        request = management_pb2.UnregisterModelRequest(model_name=self.model, model_version=version)
        return self._management(self.management.UnregisterModel, request)["status"]

    def _management(self, method, request, timeout: float = TIMEOUT_S) -> object:
        return json.loads(self._call(method, request, "management", timeout).msg)

    def _call(self, method, request, kind: str, timeout: float = TIMEOUT_S):
        token = self.tokens.header(kind)["Authorization"]
        try:
            return method(request, metadata=[("authorization", token)], timeout=timeout)
        except grpc.RpcError as error:
            raise TorchServeError(describe_rpc_error(error)) from error


def describe_rpc_error(error: grpc.RpcError) -> str:
    code, details = error.code(), error.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"TorchServe's gRPC port is not reachable ({details}): is it running? (`make serve`)"
    if "InvalidKeyException" in details or "Token Authorization failed" in details:
        return f"TorchServe answered {code.name} InvalidKeyException: {TOKEN_HINT}"
    return f"TorchServe answered {code.name}: {details}"
