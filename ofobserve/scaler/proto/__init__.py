"""Generated gRPC stubs of scaler/externalscaler.proto (scripts/generate_stubs.py): pure
message and stub definitions, no I/O of their own. Do not edit."""
