"""Masking hides the secret and only the secret: the text around it stays readable."""

from __future__ import annotations

import pytest

from streamkit import errors as E


@pytest.mark.parametrize(
    ("echoed", "shown"),
    [
        ("(you sent Bearer sk-abc.DEF_12+/==)", "(you sent Bearer ***)"),
        ('{"auth": "Bearer tok-123"}', '{"auth": "Bearer ***"}'),
        ("key co-ABCDEFGH1234], retry", "key ***], retry"),
        ("bearer lower-case-token.", "bearer ***"),
    ],
)
def test_server_echoed_tokens_are_masked_in_place(echoed: str, shown: str) -> None:
    error = E.status_error_from_body(401, {"message": echoed}, headers={}, request_id=None)
    assert isinstance(error.body, dict) and error.body["message"].startswith(shown)
    assert shown in str(error)


def test_exact_secrets_are_masked_in_place_across_the_chain() -> None:
    secret = "s3cr3t-value-123"
    cause = OSError(f"peer said [{secret}]!")
    error = E.APIStatusError(f"HTTP 500 ({secret})", status_code=500, headers={"x": secret})
    error.__cause__ = cause
    E.mask_secrets(error, [secret])
    assert str(error) == "HTTP 500 (***)"
    assert error.headers == {"x": "***"}
    assert str(cause) == "peer said [***]!"
