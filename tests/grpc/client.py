#!/usr/bin/env python3
"""A grpcio client for the end-to-end tests: calls the greeter component and
prints one JSON object with the outcome (status code name, message, replies,
trailing metadata), so the Rust tests assert what a real grpcio client sees.

Stubs are generated from tests/protos at run time with grpc_tools.protoc.
"""
import argparse
import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc

PROTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protos")


def load_stubs():
    out = tempfile.mkdtemp(prefix="mesh-host-grpc-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    for proto in ("helloworld.proto", "route_guide.proto"):
        code = protoc.main(["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}",
                            f"--grpc_python_out={out}", os.path.join(PROTOS, proto)])
        if code != 0:
            sys.exit(f"protoc failed for {proto}")
    sys.path.insert(0, out)


def channel(args):
    options = []
    if args.authority:
        options.append(("grpc.default_authority", args.authority))
    if args.ca:
        with open(args.ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        options.append(("grpc.ssl_target_name_override", "localhost"))
        return grpc.secure_channel(args.target, creds, options=options)
    return grpc.insecure_channel(args.target, options=options)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--method", choices=["SayHello", "ListFeatures"], default="SayHello")
    parser.add_argument("--name", default="world")
    parser.add_argument("--count", type=int, default=3, help="ListFeatures: messages to ask for")
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--authority", default=None)
    parser.add_argument("--ca", default=None, help="PEM CA for TLS; plaintext h2c without it")
    parser.add_argument("--metadata", action="append", default=[],
                        help="KEY=VALUE sent as call metadata (repeatable)")
    args = parser.parse_args()
    load_stubs()
    import helloworld_pb2, helloworld_pb2_grpc, route_guide_pb2, route_guide_pb2_grpc

    metadata = [tuple(item.split("=", 1)) for item in args.metadata]
    result = {"code": "OK", "message": "", "replies": [], "trailers": {}}
    with channel(args) as ch:
        try:
            if args.method == "SayHello":
                stub = helloworld_pb2_grpc.GreeterStub(ch)
                reply, call = stub.SayHello.with_call(helloworld_pb2.HelloRequest(name=args.name), timeout=args.timeout,
                                                    metadata=metadata)
                result["replies"].append(reply.message)
                result["trailers"] = {k: v for k, v in call.trailing_metadata()}
            else:
                stub = route_guide_pb2_grpc.RouteGuideStub(ch)
                rect = route_guide_pb2.Rectangle(lo=route_guide_pb2.Point(latitude=0, longitude=0),
                                                 hi=route_guide_pb2.Point(latitude=args.count, longitude=0))
                stream = stub.ListFeatures(rect, timeout=args.timeout, metadata=metadata)
                for feature in stream:
                    result["replies"].append(feature.name)
                result["trailers"] = {k: v for k, v in stream.trailing_metadata()}
        except grpc.RpcError as error:
            result["code"] = error.code().name
            result["message"] = error.details() or ""
    print(json.dumps(result))


if __name__ == "__main__":
    main()
