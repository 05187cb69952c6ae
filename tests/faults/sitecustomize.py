"""Faults for the chaos tests, installed in a role's process by putting this directory on PYTHONPATH (nothing of it is
in the product). Each is off unless its variable is set:

GRID_FAULT_RATE=0.2        that share of the SQS requests is answered, before it leaves the process, with throttling
                           or a 503 (half each), as SQS answers under load: botocore's retries must absorb them
GRID_FAULT_SEED=1          the draws' seed (with the process id)
GRID_FAULT_LOG=path        one line appended per injected answer (the test counts them)
GRID_FAULT_CRASH_ON=n      a worker that takes the task n dies at once (os._exit), as of a segfault in the kernel
"""
import os
import random

CRASH_EXIT = 70  # the exit code of a worker the crash hook kills


def _install_answers(rate: float) -> None:
    import botocore.session
    from botocore.awsrequest import AWSResponse

    draw = random.Random(f"{os.environ.get('GRID_FAULT_SEED', '1')}-{os.getpid()}")
    answers = (
        (400, b'{"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded (injected)"}'),
        (503, b'{"__type": "com.amazonaws.sqs#ServiceUnavailable", "message": "Service unavailable (injected)"}'),
    )

    def maybe_fail(request, **kwargs):
        if draw.random() >= rate:
            return None
        status, body = answers[draw.random() < 0.5]
        path = os.environ.get("GRID_FAULT_LOG")
        if path:
            with open(path, "a") as log:
                log.write(f"{os.getpid()} {status} {kwargs.get('event_name', '')}\n")
        response = AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.0",
                                                     "x-amzn-query-error": "Throttling;Sender" if status == 400 else
                                                     "ServiceUnavailable;Receiver"}, None)
        response._content = body
        return response

    create = botocore.session.Session.create_client

    def create_client(self, service_name, *args, **kwargs):
        client = create(self, service_name, *args, **kwargs)
        if service_name == "sqs":
            client.meta.events.register("before-send.sqs", maybe_fail)
        return client

    botocore.session.Session.create_client = create_client


def _install_crash(n: int) -> None:
    from grid import primes

    factorize, factor_run = primes.factorize, primes.factor_run

    def crashing_factorize(value, *args, **kwargs):
        if int(value) == n:
            os._exit(CRASH_EXIT)
        return factorize(value, *args, **kwargs)

    def crashing_factor_run(numbers, *args, **kwargs):
        if n in numbers:
            os._exit(CRASH_EXIT)
        return factor_run(numbers, *args, **kwargs)

    primes.factorize, primes.factor_run = crashing_factorize, crashing_factor_run


if os.environ.get("GRID_FAULT_RATE"):
    _install_answers(float(os.environ["GRID_FAULT_RATE"]))
if os.environ.get("GRID_FAULT_CRASH_ON"):
    _install_crash(int(os.environ["GRID_FAULT_CRASH_ON"]))
