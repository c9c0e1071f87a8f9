"""sessiond's OAuth 2.0 endpoints through a real OAuth 2.0 client library (authlib).

Run by tests/oauth2.rs with the virtualenv scripts/test makes (target/py-venv):

    python oauth2_client.py BASE_URL CLIENT_ID CLIENT_SECRET TOKEN

It introspects TOKEN, tries a wrong client secret, authenticates as a caller with
`Authorization: Bearer <secret>`, revokes TOKEN, and introspects and revokes it again; it prints
one JSON object with what each step got (status, JSON body or text, WWW-Authenticate) and
leaves the judging to the Rust test.
"""

import json
import os
import sys

# The test server is plain HTTP on loopback; authlib refuses non-HTTPS endpoints otherwise.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

from authlib.integrations.requests_client import OAuth2Session  # noqa: E402

TIMEOUT = 10


def seen(response):
    """What a step got back."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return {
        "status": response.status_code,
        "body": body,
        "content_type": response.headers.get("Content-Type"),
        "www_authenticate": response.headers.get("WWW-Authenticate"),
    }


def bearer_secret(client, method, uri, headers, body):
    """Caller authentication with `Authorization: Bearer <client secret>`."""
    headers["Authorization"] = f"Bearer {client.client_secret}"
    return uri, headers, body


def main():
    base, client_id, client_secret, token = sys.argv[1:5]
    introspect = f"{base}/oauth2/introspect"
    revoke = f"{base}/oauth2/revoke"

    client = OAuth2Session(
        client_id, client_secret, token_endpoint_auth_method="client_secret_basic"
    )
    wrong = OAuth2Session(
        client_id, client_secret + "-wrong", token_endpoint_auth_method="client_secret_basic"
    )
    by_bearer = OAuth2Session(
        client_id, client_secret, token_endpoint_auth_method="bearer_secret"
    )
    by_bearer.register_client_auth_method(("bearer_secret", bearer_secret))

    steps = {}
    steps["introspect"] = seen(client.introspect_token(introspect, token=token, timeout=TIMEOUT))
    steps["introspect_wrong_secret"] = seen(
        wrong.introspect_token(introspect, token=token, timeout=TIMEOUT)
    )
    steps["revoke_wrong_secret"] = seen(wrong.revoke_token(revoke, token=token, timeout=TIMEOUT))
    steps["introspect_bearer_caller"] = seen(
        by_bearer.introspect_token(introspect, token=token, timeout=TIMEOUT)
    )
    steps["introspect_with_hint"] = seen(
        client.introspect_token(
            introspect, token=token, token_type_hint="access_token", timeout=TIMEOUT
        )
    )
    steps["revoke"] = seen(client.revoke_token(revoke, token=token, timeout=TIMEOUT))
    steps["introspect_after_revoke"] = seen(
        client.introspect_token(introspect, token=token, timeout=TIMEOUT)
    )
    steps["revoke_again"] = seen(client.revoke_token(revoke, token=token, timeout=TIMEOUT))
    print(json.dumps(steps))


if __name__ == "__main__":
    main()
