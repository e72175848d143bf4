"""An independent gRPC client (Python grpcio, not written here) against Natterjack.

Compiles proto/natterjack/v1/spaces.proto with grpcio-tools into a temporary directory,
then, over mutual TLS, creates a space and lists it back; then tries the same call without
a client certificate, which must fail. Prints one JSON object with what happened.
"""

import argparse
import json
import sys
import tempfile

import grpc
from grpc_tools import protoc


def stubs(proto_root):
    out = tempfile.mkdtemp()
    code = protoc.main([
        "protoc", f"-I{proto_root}", f"--python_out={out}", f"--grpc_python_out={out}",
        "natterjack/v1/spaces.proto",
    ])
    if code != 0:
        sys.exit(f"protoc failed with {code}")
    sys.path.insert(0, out)
    from natterjack.v1 import spaces_pb2, spaces_pb2_grpc
    return spaces_pb2, spaces_pb2_grpc


def main():
    parser = argparse.ArgumentParser()
    for flag in ("--target", "--ca", "--cert", "--key", "--proto-root", "--space-name"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    pb, rpc = stubs(args.proto_root)
    read = lambda path: open(path, "rb").read()
    options = [("grpc.ssl_target_name_override", "localhost")]
    result = {}

    mutual = grpc.ssl_channel_credentials(read(args.ca), read(args.key), read(args.cert))
    with grpc.secure_channel(args.target, mutual, options) as channel:
        client = rpc.SpacesStub(channel)
        created = client.CreateSpace(pb.CreateSpaceRequest(name=args.space_name), timeout=20)
        listed = client.ListSpaces(pb.ListSpacesRequest(), timeout=20)
        result["created"] = {"id": created.id, "name": created.name, "owner": created.owner}
        result["listed"] = [s.name for s in listed.spaces]

    server_only = grpc.ssl_channel_credentials(read(args.ca))
    with grpc.secure_channel(args.target, server_only, options) as channel:
        try:
            rpc.SpacesStub(channel).ListSpaces(pb.ListSpacesRequest(), timeout=20)
            result["without_certificate"] = "OK"
        except grpc.RpcError as e:
            result["without_certificate"] = e.code().name

    print(json.dumps(result))


if __name__ == "__main__":
    main()
