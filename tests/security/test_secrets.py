"""Secrets never reach the output: URL passwords and secret-named environment values are
masked in text and JSON, errors included."""

from __future__ import annotations

import json

from tests.conftest import MODELS
from tests.security._run import assert_no_traceback, run

SIG = str(MODELS / "tokens" / "1")
TOKEN = "tok-3f9a8b7c6d5e"
PASSWORD = "pa55-w0rd-xyz"


def test_url_passwords_and_secret_environment_values_are_masked_everywhere(tmp_path):
    env = {"MY_SERVICE_API_TOKEN": TOKEN, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE12",
           "AWS_SECRET_ACCESS_KEY": "s3cr3t-s3cr3t-s3cr3t", "AWS_DEFAULT_REGION": "us-east-1"}
    # A payload that quotes the token and a URL with a password: reports, text and JSON.
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"instances": [[TOKEN, f"https://bob:{PASSWORD}@example.com/x"]]}))
    for fmt in ("text", "json"):
        r = run(["validate", str(body), "--signature", SIG, "--format", fmt], env=env)
        assert_no_traceback(r)
        assert r.rc == 1
        out = r.out + r.err
        assert TOKEN not in out and PASSWORD not in out and "***" in out

    # An error message carrying --endpoint-url's password (nothing listens on port 9).
    for fmt in ("text", "json"):
        r = run(["probe", "my-endpoint", "--endpoint-url",
                 f"http://alice:{PASSWORD}@127.0.0.1:9", "--connect-timeout", "1",
                 "--timeout", "1", "--format", fmt], env=env, timeout=120)
        assert_no_traceback(r)
        assert r.rc == 2, r.err
        out = r.out + r.err
        assert PASSWORD not in out and "s3cr3t" not in out and "alice:***@" in out
