"""A second-language caller of demo-greeter: Python's grpcio, with nothing generated.

It checks health with grpcio-health-checking, learns the Greeter API from the server's own
reflection service (grpcio-reflection), builds the request type from the served descriptors, and
calls SayHello. It prints one JSON object for the Rust integration test that runs it:

    python3 greeter_client.py HOST:PORT NAME
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICE = "demo.greeter.v1.Greeter"


def main() -> int:
    address, name = sys.argv[1], sys.argv[2]
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        statuses = {}
        for service in ("", SERVICE):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            statuses[service or "(server)"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
                reply.status
            )

        reflection = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(reflection)
        service = pool.FindServiceByName(SERVICE)
        method = service.FindMethodByName("SayHello")
        request_class = message_factory.GetMessageClass(method.input_type)
        reply_class = message_factory.GetMessageClass(method.output_type)

        call = channel.unary_unary(
            f"/{SERVICE}/SayHello",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply_class.FromString,
        )
        reply, outcome = call.with_call(request_class(name=name), timeout=5)
        metadata = {k: v for k, v in outcome.initial_metadata()}

    print(
        json.dumps(
            {
                "health": statuses,
                "methods": sorted(m.name for m in service.methods),
                "reply": json_format.MessageToDict(reply),
                "version": metadata.get("x-flotilla-version"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
