"""What `--signature` stands for when validating: signatures plus what the container knows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kdiag.errors import KdiagError
from kdiag.findings import Finding, explain_errors
from kdiag.signature import Signature, load_signatures, pick_signature


@dataclass
class Target:
    signatures: list[Signature]
    model_name: str = "model"
    versions: tuple[int, ...] | None = None
    has_requirements: bool = False
    has_lib: bool = False
    misplaced_code: str | None = None
    findings: list[Finding] = field(default_factory=list)


def resolve_target(arg: str, *, signature_name: str | None = None, model_name: str | None = None,
                   code_dir: Path | None = None) -> Target:
    p = Path(arg)
    if p.is_file() and p.suffix.lower() == ".json":
        target = Target(signatures=load_signatures(arg))
    else:
        from kdiag.artifacts import read_model

        art = read_model(p)
        if not art.signatures:
            raise KdiagError(f"{arg} has no serving signature kdiag could read. "
                             + explain_errors(art.findings))
        target = Target(signatures=art.signatures)
        lay = art.layout
        if art.kind == "archive" and art.model_name:
            target.model_name = art.model_name
        if lay is not None and lay.misplaced_code:
            target.misplaced_code = lay.misplaced_code[0]
        if lay is not None and lay.default_model is not None:
            target.versions = tuple(int(v) for v in lay.default_model.loadable_versions)
            # With inference.py present but not run (no --code), kdiag predicts the container
            # without code/ at all rather than the raw-forwarding default handler.
            if not lay.inference_py or code_dir is not None:
                target.has_requirements = "code/requirements.txt" in lay.python_path_files
                target.has_lib = "code/lib" in lay.python_path_files
            if lay.inference_py and code_dir is None:
                target.findings.append(Finding(
                    "KD230", "warning", "container",
                    "This model has code/inference.py: the endpoint runs your handlers, and "
                    "kdiag only runs them when you pass --code (it executes your code), so it "
                    "predicts the container without code/.",
                    "Extract code/ and pass --code path/to/code.",
                ))
    if model_name:
        target.model_name = model_name
    pick_signature(target.signatures, signature_name)  # fail early on a wrong name
    return target
