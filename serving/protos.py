"""Generate the gRPC Python stubs from the .proto files inside the installed TorchServe's jar.

The stubs go into the virtual environment as the package `torchserve_grpc` (never committed), so they always match
the TorchServe that serves them. `google/rpc/status.proto`'s Python module comes from googleapis-common-protos.
"""

import sysconfig
import tempfile
import zipfile
from pathlib import Path

import ts
from grpc_tools import protoc

from animals.errors import UserError

PACKAGE = "torchserve_grpc"
PROTOS = ("inference.proto", "management.proto")
JAR = Path(ts.__file__).parent / "frontend" / "model-server.jar"


def generate(destination: Path) -> Path:
    """Write torchserve_grpc/{inference,management}_pb2(_grpc).py under `destination`; return the package folder."""
    with tempfile.TemporaryDirectory() as work, zipfile.ZipFile(JAR) as jar:
        sources = Path(work)
        (sources / PACKAGE).mkdir()
        for name in PROTOS:
            (sources / PACKAGE / name).write_bytes(jar.read(name))
        (sources / "google" / "rpc").mkdir(parents=True)
        (sources / "google" / "rpc" / "status.proto").write_bytes(jar.read("google/rpc/status.proto"))
        well_known = Path(protoc.__file__).parent / "_proto"
        arguments = [
            "grpc_tools.protoc",
            f"-I{sources}",
            f"-I{well_known}",
            f"--python_out={destination}",
            f"--grpc_python_out={destination}",
            *(f"{sources / PACKAGE / name}" for name in PROTOS),
        ]
        if protoc.main(arguments) != 0:
            raise UserError(f"protoc could not compile the protos from {JAR}")
    package = destination / PACKAGE
    (package / "__init__.py").write_text('"""gRPC stubs generated from TorchServe\'s protos by serving.protos."""\n')
    return package


def site_packages() -> Path:
    """The running environment's site-packages, where the stubs go by default."""
    return Path(sysconfig.get_paths()["purelib"])
