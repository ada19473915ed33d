"""Schemathesis against the served OpenAPI: every operation, authenticated, with generated
input (valid and invalid); no answer may be a server error, and every answer the schema
describes must match it.

The service runs as a process on the demo city, as a deployment does; the caller is a city
supervisor (who may read the most), an admin (accounts, org units, the contact plan) or the
auditor (the audit trail). Logging out,
changing the password and the second factor's steps are left out: they end or change the
session the rest of the run needs, and have tests of their own.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.conftest import create_empty_database, drop_database
from tests.e2e.demo import seed_demo
from tests.e2e.test_process import env_for
from tests.servers import free_port, wait_ready

EXAMPLES_PER_OPERATION = 25
SESSION_CHANGING = r"^/auth/(logout|password|totp/.*)$"
STREAMS = {"/alerts/stream"}
# Who may use a part of the API; the rest is asked by a city supervisor.
CALLER_OF = {"accounts": "admin", "org-units": "admin", "contact-plan": "admin", "audit": "auditor"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    database = asyncio.run(create_empty_database())
    env = env_for(
        database,
        CASEMGR_ENV="demo",
        CASEMGR_MFA_REQUIRED="false",
        CASEMGR_LOG_LEVEL="ERROR",
        CASEMGR_TRACKING_NAMESPACE=f"fuzz{time.monotonic_ns() % 10**8}",
        CASEMGR_TRACKING_SHARDS="4",
        CASEMGR_RATE_LIMIT_PER_ADDRESS_PER_MINUTE="0",
        CASEMGR_RATE_LIMIT_PER_ACCOUNT_PER_MINUTE="0",
        CASEMGR_RATE_LIMIT_LOGINS_PER_ADDRESS_PER_MINUTE="0",
    )
    seed_demo(env, tmp_path_factory.mktemp("fuzz"), people=120, monitored=2)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "casemgr", "serve", "--port", str(port)], env=env)
    try:
        wait_ready(port)
        base_url = f"http://127.0.0.1:{port}"
        tokens = {}
        for username in ("supervisor.city", "admin", "auditor"):
            login = httpx.post(
                f"{base_url}/auth/login", json={"username": username, "password": "demo-password-2026"}
            )
            tokens[username] = login.json()["token"]
        yield {"base_url": base_url, "tokens": tokens}
    finally:
        server.terminate()
        server.wait(timeout=30)
        asyncio.run(drop_database(database))


@pytest.fixture(scope="module")
def api_schema(served: dict[str, Any]) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{served['base_url']}/schema/openapi.json")
    return schema.exclude(path_regex=SESSION_CHANGING)


def fuzz(operation: schemathesis.APIOperation, base_url: str, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported
    )
    def call(case: schemathesis.Case) -> None:
        if operation.path in STREAMS:
            # An event stream never ends: what it answers is the status and the media type.
            kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
            with requests.request(**kwargs, stream=True, timeout=10) as response:
                assert response.status_code < 500, response.text
                if response.status_code == 200:
                    assert response.headers["content-type"].startswith("text/event-stream")
            return
        case.call_and_validate(
            base_url=base_url,
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance],
            timeout=10,
        )

    call()


def test_no_operation_gives_a_server_error_or_breaks_its_schema(
    api_schema: schemathesis.BaseSchema, served: dict[str, Any]
) -> None:
    """Each operation in turn, its failures collected, so one run names every operation that fails."""
    failures: dict[str, str] = {}
    took: dict[str, float] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for operation in operations:
        caller = CALLER_OF.get(operation.path.split("/")[1], "supervisor.city")
        headers = {"Authorization": f"Bearer {served['tokens'][caller]}", "X-Purpose": "schema fuzzing"}

        try:
            started = time.monotonic()
            fuzz(operation, served["base_url"], headers)
            took[operation.label] = time.monotonic() - started
        except (Exception, BaseExceptionGroup) as e:  # every failure of one operation, with the rest
            failures[operation.label] = f"{type(e).__name__}: {str(e)[:1500]}"
    slowest = sorted(took.items(), key=lambda item: -item[1])[:5]
    print(
        f"\nfuzzed {len(operations)} operations, up to {EXAMPLES_PER_OPERATION} cases each; slowest {slowest}"
    )
    assert not failures, "\n\n".join(f"{label}\n{error}" for label, error in failures.items())


def test_the_fuzzed_schema_covers_every_operation_but_the_session_changing_ones(
    api_schema: schemathesis.BaseSchema,
) -> None:
    labels = [result.ok().label for result in api_schema.get_all_operations()]
    assert len(labels) > 60, labels
    assert not any("/auth/logout" in label for label in labels)
