"""The boto3 clients the grid makes, and how each finds its endpoint and region.

Endpoints: a client gets an explicit endpoint only where the grid's configuration names one for its service, and
the only such name is the broker URL's `endpoint_url`, which is the SQS endpoint alone (an SQS-compatible server
such as ElasticMQ serves no SSM, Auto Scaling, CloudWatch or S3). Every other client, and SQS when the broker URL
names no endpoint, is left to boto3's standard chain: `AWS_ENDPOINT_URL_<SERVICE>` (e.g. `AWS_ENDPOINT_URL_S3`),
then `AWS_ENDPOINT_URL`, then the profile's `endpoint_url` in ~/.aws/config, then AWS itself. So one variable,
`AWS_ENDPOINT_URL`, sends every client to moto or LocalStack, and a plain `sqs://` broker URL does the same on AWS.

Region: the broker URL's `region`, where it gives one, is the grid's region for every client (the queues, the
parameters, the fleet and its metrics live in one region); else boto3's chain (AWS_REGION, AWS_DEFAULT_REGION, the
profile).
"""
from __future__ import annotations

import threading
from typing import Any

RETRIES = {"mode": "standard"}  # botocore's standard retries: 3 attempts, exponential backoff with jitter
_loader = None
_loader_lock = threading.Lock()


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None, **config: Any):
    """A botocore client of `service` (what boto3.client makes) in a session of its own, so that credentials, region
    and endpoints are read afresh; the sessions share one loader of the service models, which are read once (a
    tenth of a second or more of JSON per client otherwise)."""
    import botocore.session  # here, not at the top: a role on the embedded queue never loads botocore (start-up)
    from botocore.config import Config

    session = botocore.session.Session()
    session.register_component("data_loader", _shared_loader())
    settings = {"retries": RETRIES, **config}
    return session.create_client(service, region_name=region, endpoint_url=endpoint_url, config=Config(**settings))


def _shared_loader():
    global _loader
    with _loader_lock:
        if _loader is None:
            import botocore.loaders  # as botocore.session above

            _loader = botocore.loaders.create_loader()
        return _loader
