"""Replay's client-side decoding reads responses exactly as kdiag diff and capture replay do."""

from __future__ import annotations

import json

import numpy as np

from kdiag.replays.outputs import response_tensors
from kdiag.replays.replay import decode_response


def test_single_unnamed_output_takes_the_signatures_output_name():
    out = decode_response(b'{"predictions": [[2.5], [4.0]]}', ["output_0"])
    assert list(out) == ["output_0"] and out["output_0"].tolist() == [[2.5], [4.0]]


def test_b64_outputs_decode_to_the_same_bytes_diff_reads():
    body = json.dumps({"predictions": [{"b64": "aGk="}, {"b64": "eW8="}]}).encode()
    mine = decode_response(body, ["image_bytes"])["image_bytes"]
    theirs, _ = response_tensors(json.loads(body))
    assert mine.tolist() == [b"hi", b"yo"] == next(iter(theirs.values())).tolist()


def test_several_outputs_keep_their_names_and_nan_tokens_decode():
    body = b'{"predictions": [{"score": [NaN], "probs": [0.1, 0.9]}]}'
    out = decode_response(body, ["probs", "score"])
    assert sorted(out) == ["probs", "score"] and np.isnan(out["score"][0, 0])
