"""Payload nesting and rank: checked without recursion, with what TF Serving really answers."""

from __future__ import annotations

import json

from tests.conftest import MODELS
from tests.security._run import assert_no_traceback, run

SIG = str(MODELS / "tokens" / "1")


def _nested(rank: int) -> str:
    return '{"instances": ' + "[" * rank + "1" + "]" * rank + "}"


def _validate(tmp_path, body: str, *extra: str):
    p = tmp_path / "body.json"
    p.write_text(body)
    r = run(["validate", str(p), "--signature", SIG, "--format", "json", *extra], timeout=60)
    assert_no_traceback(r)
    return r, json.loads(r.out)


def test_rank_over_254_gets_tf_servings_tensor_parsing_error_and_deep_bodies_never_recurse(
        tmp_path):
    r, doc = _validate(tmp_path, _nested(300))
    assert r.rc == 1 and not doc["accepted"] and doc["status"] == 400
    assert "tensor parsing error: tokens" in doc["error"]
    assert "KD330" in [f["code"] for f in doc["findings"]]

    # 65..254 dimensions: numpy cannot hold it, but the rank is still checked (KD331 + KD401).
    r, doc = _validate(tmp_path, _nested(70))
    codes = [f["code"] for f in doc["findings"]]
    assert r.rc == 1 and not doc["accepted"] and "KD331" in codes and "KD401" in codes

    # Rank 2000 (RecursionError before) and a million levels (status line "HTTP/1.1 0" in serve).
    r, doc = _validate(tmp_path, _nested(2000))
    assert r.rc == 1 and not doc["accepted"]
    r, doc = _validate(tmp_path, '{"instances": ' + "[" * 1_000_000 + "]" * 1_000_000 + "}",
                       "--framework-version", "2.11")
    assert r.rc == 1 and not doc["accepted"] and r.seconds < 30
    assert "KD332" in [f["code"] for f in doc["findings"]]
