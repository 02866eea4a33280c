"""security/sso_provider.py against a real OpenID Connect provider: oidc-provider-mock run with
``--require-registration``, so its token endpoint checks the client id and secret (Authlib's
client authentication) and answers ``invalid_client`` for a wrong one."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from security import sso_provider
from security.sso_provider import RETRY_SECONDS, client_problem
from tests.oidc_mock import running_provider

REDIRECT = "http://localhost:8501/oauth2callback"
REJECTED = "the provider rejected the client id or secret"


def register(provider: str, method: str = "client_secret_basic") -> tuple[str, str]:
    """A client registered at the provider: (client_id, client_secret)."""
    response = httpx.post(
        f"{provider}/oauth2/clients",
        json={"redirect_uris": [REDIRECT], "token_endpoint_auth_method": method},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["client_id"], body["client_secret"]


def token_endpoint(provider: str) -> str:
    return httpx.get(f"{provider}/.well-known/openid-configuration").json()["token_endpoint"]


@pytest.fixture(autouse=True)
def _fresh_answers() -> Iterator[None]:
    sso_provider.forget()
    yield
    sso_provider.forget()


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with running_provider("--require-registration") as url:
        yield url


def test_the_registered_secret_is_accepted_and_a_wrong_one_is_named(provider):
    client_id, secret = register(provider)
    endpoint = token_endpoint(provider)
    assert client_problem(endpoint, client_id, secret, REDIRECT) is None
    problem = client_problem(endpoint, client_id, secret + "x", REDIRECT)
    assert problem is not None and problem.startswith(REJECTED), problem
    assert "HTTP 401 invalid_client" in problem and "client_secret_basic" in problem
    assert secret not in problem


def test_an_unknown_client_id_is_named(provider):
    _, secret = register(provider)
    problem = client_problem(token_endpoint(provider), "no-such-client", secret, REDIRECT)
    assert problem is not None and problem.startswith(REJECTED), problem


def test_client_secret_post_when_the_config_asks_for_it(provider):
    client_id, secret = register(provider, "client_secret_post")
    endpoint = token_endpoint(provider)
    offered = ["client_secret_basic", "client_secret_post"]
    post = {"supported": offered, "method": "client_secret_post"}
    assert client_problem(endpoint, client_id, secret, REDIRECT, **post) is None
    wrong = client_problem(endpoint, client_id, "wrong", REDIRECT, **post)
    assert wrong is not None and wrong.startswith(REJECTED) and "client_secret_post" in wrong
    # The client registered for post, sent with basic (Streamlit's default): the provider
    # refuses the exchange, so sign-in would fail too.
    basic = client_problem(endpoint, client_id, secret, REDIRECT, supported=offered)
    assert basic is not None and basic.startswith(REJECTED), basic


def test_a_method_the_provider_does_not_offer_says_which_to_set():
    problem = client_problem(
        "http://127.0.0.1:9/token", "id", "secret", REDIRECT, supported=["client_secret_post"]
    )
    assert problem is not None
    assert "does not accept client_secret_basic" in problem
    assert 'token_endpoint_auth_method = "client_secret_post"' in problem


def test_an_unreachable_token_endpoint_is_named():
    problem = client_problem("http://127.0.0.1:9/oauth2/token", "id", "secret", REDIRECT)
    assert problem is not None and "could not be reached" in problem, problem


def test_answers_are_remembered_and_failures_asked_again_after_a_while():
    clock = [1000.0]

    def now() -> float:
        return clock[0]

    with running_provider("--require-registration") as short_lived:
        client_id, secret = register(short_lived)
        endpoint = token_endpoint(short_lived)
        assert client_problem(endpoint, client_id, secret, REDIRECT, now=now) is None
        wrong = client_problem(endpoint, client_id, "wrong", REDIRECT, now=now)
        assert wrong is not None and wrong.startswith(REJECTED)
    # The provider is gone: the rejection is kept for RETRY_SECONDS, then asked again (and now
    # unreachable); the accepted client is not asked again at all.
    clock[0] += RETRY_SECONDS - 1
    assert client_problem(endpoint, client_id, "wrong", REDIRECT, now=now) == wrong
    clock[0] += 2
    again = client_problem(endpoint, client_id, "wrong", REDIRECT, now=now)
    assert again is not None and "could not be reached" in again, again
    clock[0] += RETRY_SECONDS * 10
    assert client_problem(endpoint, client_id, secret, REDIRECT, now=now) is None
