"""The fast JSON-lines boundary scan agrees with tensorflowServing.js's regex on any text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kdiag.path.container_njs import JSON_LINES_RE, is_json_lines

ALPHABET = st.sampled_from(list("[]{},1 \t\r\n\u00a0\ufeff\u2028\x1c\"a:"))


@settings(max_examples=3000)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_fast_scan_equals_the_regex(text):
    assert is_json_lines(text) == (JSON_LINES_RE.search(text) is not None)


def test_known_cases():
    assert is_json_lines('[1]\n[2]') and is_json_lines('{"a":1} \u00a0{"a":2}')
    assert not is_json_lines('[[1,2],[3,4]]') and not is_json_lines('{"instances": [1]}')
