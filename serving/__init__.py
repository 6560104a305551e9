"""Everything that operates a TorchServe: its configuration and key file, the one client (REST and gRPC), archives
and their SHA-256 records, the model store's versions, rollout, and starting and stopping the server."""
