"""TorchServe's REST inference and management APIs for one model, with TorchServe's errors as one clear line."""

import json

import requests

from animals.errors import UserError
from scripts.settings import ServerConfig, read_keys

TIMEOUT_S = 30
REGISTER_TIMEOUT_S = 600
TOKEN_HINT = "the token was refused: read the current one with `make token` (keys expire, see README: Tokens)"


class TorchServeError(UserError):
    """TorchServe answered with an error, or could not be reached."""


class Tokens:
    """The bearer tokens to send: an explicit one, or TorchServe's key file read afresh on each call."""

    def __init__(self, config: ServerConfig, token: str | None = None) -> None:
        self.config = config
        self.token = token

    def header(self, kind: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token or read_keys(self.config)[kind]}"}


class RestClient:
    """The model's REST endpoints: predictions, and register/describe/scale/set-default/unregister."""

    def __init__(self, config: ServerConfig, tokens: Tokens, management_url: str | None = None) -> None:
        self.model = config.model_name
        self.inference_url = config.inference_url
        self.management_url = management_url or config.management_url
        self.tokens = tokens

    def ping(self) -> str:
        return self._call("GET", f"{self.inference_url}/ping", "inference")["status"]

    def predict(self, image: bytes, version: str | None = None) -> dict[str, float]:
        url = f"{self.inference_url}/predictions/{self.model}" + (f"/{version}" if version else "")
        return self._call("POST", url, "inference", data=image)

    def describe(self, version: str | None = None) -> list[dict]:
        return self._call("GET", f"{self.management_url}/models/{self.model}" + (f"/{version}" if version else ""))

    def register(self, archive: str, workers: int, batch_size: int | None, max_batch_delay: int | None) -> str:
        params = {"url": archive, "model_name": self.model, "initial_workers": workers, "synchronous": "true"}
        if batch_size is not None:
            params["batch_size"] = batch_size
        if max_batch_delay is not None:
            params["max_batch_delay"] = max_batch_delay
        answer = self._call("POST", f"{self.management_url}/models", params=params, timeout=REGISTER_TIMEOUT_S)
        return answer["status"]

    def scale(self, version: str | None, min_workers: int, max_workers: int) -> str:
        url = f"{self.management_url}/models/{self.model}" + (f"/{version}" if version else "")
        params = {"min_worker": min_workers, "max_worker": max_workers, "synchronous": "true"}
        return self._call("PUT", url, params=params, timeout=REGISTER_TIMEOUT_S)["status"]

    def set_default(self, version: str) -> str:
        return self._call("PUT", f"{self.management_url}/models/{self.model}/{version}/set-default")["status"]

    def unregister(self, version: str) -> str:
        return self._call("DELETE", f"{self.management_url}/models/{self.model}/{version}")["status"]

    def _call(self, method: str, url: str, kind: str = "management", timeout: float = TIMEOUT_S, **kwargs) -> object:
        try:
            response = requests.request(method, url, headers=self.tokens.header(kind), timeout=timeout, **kwargs)
        except requests.ConnectionError as error:
            raise TorchServeError(f"TorchServe is not reachable at {url}: is it running? (`make serve`)") from error
        except requests.Timeout as error:
            raise TorchServeError(f"TorchServe did not answer {method} {url} within {timeout:.0f} s") from error
        except requests.RequestException as error:
            raise TorchServeError(f"cannot call {url}: {error}") from error
        if response.status_code >= 400:
            raise TorchServeError(describe_error(response.status_code, response.text))
        try:
            return response.json()
        except ValueError as error:
            raise TorchServeError(f"TorchServe answered {url} with something that is not JSON") from error


def describe_error(status: int, body: str) -> str:
    """One line from TorchServe's JSON error body: status, type and message, with a hint for refused tokens."""
    try:
        error = json.loads(body)
        kind, message = error.get("type", ""), error.get("message", body)
    except ValueError:
        kind, message = "", body.strip() or "(no message)"
    if kind == "InvalidKeyException":
        return f"TorchServe answered {status} {kind}: {TOKEN_HINT}"
    return f"TorchServe answered {status} {kind}: {message}".replace("  ", " ")
