"""Output for a terminal: tables that never cut a value at 80 columns, control bytes of echoed
payloads shown escaped, progress on stderr only for a terminal."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import numpy as np
from click.testing import CliRunner
from rich.console import Console

from kdiag.cli import cli
from kdiag.comparison import CompareConfig, compare_sets
from kdiag.replays.outputs import load_output_set
from kdiag.report import Col, _num, print_rows, printable, progress_bar, render_comparison
from tests.conftest import MODELS, ROOT

SIG = str(MODELS / "custom/export/1")


def rendered(width: int, draw) -> str:
    con = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    draw(con)
    return con.export_text()


def two_sets(tmp_path):
    """Three outputs with long names and values that differ in every statistic."""
    rng = np.random.default_rng(0)
    a = {"classification_probabilities_after_softmax": rng.random((40, 10), dtype=np.float32),
         "regression_head_output_in_original_units": rng.random((40, 1)) * 1e6,
         "embedding_vector_for_downstream_retrieval": rng.random((40, 3, 4), dtype=np.float32)}
    b = {k: v + (1e-3 if i else 0) * rng.standard_normal(v.shape).astype(v.dtype)
         for i, (k, v) in enumerate(a.items())}
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **b)
    sets = [load_output_set(str(tmp_path / f)) for f in ("a.npz", "b.npz")]
    return compare_sets(*sets, CompareConfig(atol=1e-6, rtol=1e-7))


def test_diff_tables_at_80_columns_show_every_value_whole(tmp_path):
    r = two_sets(tmp_path)
    text = rendered(80, lambda con: render_comparison(r, con, failed=True))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    words = set(re.split(r"[\s│┃|]+", text))
    for o in r.outputs:
        values = [o.name, o.dtype_a, f"{o.compared}/{o.records}", str(o.failed),
                  _num(o.abs_max), _num(o.abs_mean), _num(o.rel_max), _num(o.rel_mean),
                  _num(o.required_atol), _num(o.required_rtol)]
        for v in values:
            assert v in words, (v, text)
        assert str(o.shape_a) in text
        for w in (o.worst if not o.passed else []):  # worst records: of failing outputs
            assert w.id in words and _num(w.abs) in words and _num(w.a) in words


def test_diff_outputs_at_exactly_80_columns_keep_long_names_and_wide_shapes_whole(tmp_path):
    rng = np.random.default_rng(1)
    a = {"decoder_attention_weights_for_every_head_and_every_layer":
         rng.random((2, 3, 7, 11, 13), dtype=np.float32),
         "segmentation_logits_per_pixel_before_the_argmax":
         rng.random((2, 64, 48, 21), dtype=np.float32)}
    b = {k: v + np.float32(1e-3) for k, v in a.items()}
    b["segmentation_logits_per_pixel_before_the_argmax"] = rng.random((2, 64, 48, 19),
                                                                      dtype=np.float32)
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **b)
    r = compare_sets(*[load_output_set(str(tmp_path / f)) for f in ("a.npz", "b.npz")],
                     CompareConfig(atol=1e-6, rtol=1e-7))
    text = rendered(80, lambda con: render_comparison(r, con, failed=True))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    outputs = text.split("Outputs\n", 1)[1].split("Mismatches\n", 1)[0]
    lines = [line.strip() for line in outputs.splitlines()]
    for o in r.outputs:
        # Each value whole on one line: stacked, nothing folded inside a name or a shape.
        assert f"- output {o.name}" in lines, outputs
        shape = str(o.shape_a) if o.shape_a == o.shape_b else f"{o.shape_a} / {o.shape_b}"
        assert f"shape: {shape}" in lines, outputs
        assert f"dtype: {o.dtype_a}" in lines
        assert f"compared: {o.compared}/{o.records}" in lines
        assert f"abs max/mean: {_num(o.abs_max)} / {_num(o.abs_mean)}" in lines
    assert "shape: (64, 48, 21) / (64, 48, 19)" in lines


def test_a_table_needing_exactly_80_columns_is_drawn_and_one_more_is_stacked():
    cols = [Col("name"), Col("value")]
    # A two-column table is 1 + (w1 + 3) + (w2 + 3) wide: 80 with w1 + w2 = 73.
    fits = rendered(80, lambda c: print_rows(c, "T", cols, [["n" * 36, "v" * 37]]))
    assert "┃ name" in fits and "n" * 36 in fits and "v" * 37 in fits
    assert max(len(line) for line in fits.splitlines()) == 80 and "…" not in fits
    over = rendered(80, lambda c: print_rows(c, "T", cols, [["n" * 36, "v" * 38]]))
    assert "┃" not in over and "- name " + "n" * 36 in over and "value: " + "v" * 38 in over


def test_a_table_that_fits_stays_a_table_and_one_that_does_not_is_stacked():
    cols = [Col("name"), Col("value"), Col("note", no_wrap=False)]
    small = rendered(80, lambda c: print_rows(c, "T", cols, [["a", "1.5", "short note"]]))
    assert "┃ name" in small
    wide = [["x" * 40, "y" * 40, "a note that can wrap"]]
    stacked = rendered(80, lambda c: print_rows(c, "T", cols, wide))
    assert "x" * 40 in stacked and "y" * 40 in stacked and "┃" not in stacked
    assert "value: " + "y" * 40 in stacked


def test_control_bytes_are_shown_escaped():
    assert printable("a\x1b[31mb\x00c\td\ne\x7f\u202e") == "a\\x1b[31mb\\x00c\td\ne\\x7f\\u202e"


def test_control_bytes_in_an_echoed_payload_never_reach_the_terminal(tmp_path):
    body = tmp_path / "evil.json"
    body.write_bytes(b'{"instances": [["\x1b[31mred", "\x00", 3, 4, 5]]}\x1b[2J')
    r = CliRunner().invoke(cli, ["validate", str(body), "--signature", SIG])
    assert r.exit_code == 1, r.output
    assert "\x1b" not in r.output and "\x00" not in r.output
    assert "\\x1b[31m" in r.output and "\\x00" in r.output
    # A payload file whose name holds control bytes, in a folder listing.
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a\x1b[31m.json").write_text("[1]")
    r = CliRunner().invoke(cli, ["validate", str(tmp_path / "dir"), "--signature", SIG, "-v"])
    assert "\x1b" not in r.output and "a\\x1b[31m.json" in r.output


def test_progress_bar_draws_on_a_terminal_only():
    term = io.StringIO()
    con = Console(file=term, force_terminal=True, width=80)
    with progress_bar("validating", total=3, console_=con) as advance:
        advance(3)
    assert "validating" in term.getvalue()
    pipe = io.StringIO()
    with progress_bar("validating", total=3, console_=Console(file=pipe)) as advance:
        advance(3)
    assert pipe.getvalue() == ""
    with progress_bar("validating", total=3, quiet=True, console_=con) as advance:
        advance(3)


def test_folder_validation_writes_nothing_to_a_stderr_that_is_not_a_terminal(tmp_path):
    for i in range(5):
        (tmp_path / f"{i}.json").write_text("[1, 2, 3, 4, 5]")
    p = subprocess.run([sys.executable, "-m", "kdiag", "validate", str(tmp_path),
                        "--signature", SIG], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0 and p.stderr == ""
    assert "5 payloads: 5 accepted, 0 rejected" in p.stdout


def test_batch_summary_lists_the_rejected_payloads_and_all_with_verbose(tmp_path):
    (tmp_path / "ok.json").write_text("[1, 2, 3, 4, 5]")
    (tmp_path / "bad.json").write_text('{"instances": [["1", "2", "3", "4", "5"]]}')
    r = CliRunner().invoke(cli, ["validate", str(tmp_path), "--signature", SIG])
    assert "2 payloads: 1 accepted, 1 rejected" in r.output
    assert "Rejected payloads" in r.output and "bad.json" in r.output
    assert "ok.json" not in r.output and "-v lists every payload" in r.output
    r = CliRunner().invoke(cli, ["validate", str(tmp_path), "--signature", SIG, "-v"])
    assert "ok.json" in r.output and "bad.json" in r.output
    doc = json.loads(CliRunner().invoke(cli, ["validate", str(tmp_path), "--signature", SIG,
                                              "--format", "json"]).output)
    assert (doc["accepted"], doc["rejected"]) == (1, 1)
