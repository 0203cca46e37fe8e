"""What `--signature` stands for when validating: signatures plus what the container knows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kdiag.diagnosis.findings import Finding, explain_errors
from kdiag.errors import KdiagError
from kdiag.model.artifact import ModelArtifact, read_model
from kdiag.model.signature import Signature, pick_signature, signatures_from_json


@dataclass
class Target:
    signatures: list[Signature]
    model_name: str = "model"
    versions: tuple[int, ...] | None = None
    has_requirements: bool = False
    has_lib: bool = False
    misplaced_code: str | None = None
    findings: list[Finding] = field(default_factory=list)


def target_from_artifact(art: ModelArtifact, *, code_dir: Path | None = None,
                         model_name: str | None = None) -> Target:
    """What the container makes of an artifact: the model's name and versions, and which
    code/ files choose its request path. `art` is read as uploaded (an archive as an archive:
    its layout names the model)."""
    if not art.signatures:
        raise KdiagError(f"{art.path} has no serving signature kdiag could read. "
                         + explain_errors(art.findings))
    target = Target(signatures=art.signatures)
    # What the file says about every request (KD501: variables TF Serving cannot restore).
    target.findings += [f for f in art.findings if f.code == "KD501"]
    lay = art.layout
    if art.kind in ("archive", "versions") and art.model_name:
        # The container's discovery names a model after its base folder: an archive's or a
        # folder's `half_plus_three/00000123/saved_model.pb` is served as half_plus_three, and
        # a folder of version folders after that folder. A lone version folder (kind
        # "savedmodel") is packed as `tar -czf model.tar.gz 1`: the container calls it "model".
        target.model_name = art.model_name
    if model_name:
        target.model_name = model_name
    if lay is not None and lay.misplaced_code:
        target.misplaced_code = lay.misplaced_code[0]
    if lay is not None and lay.default_model is not None:
        target.versions = tuple(int(v) for v in lay.default_model.loadable_versions)
    elif art.version and art.version.isdigit():
        target.versions = (int(art.version),)  # a SavedModel folder named after its version
    if lay is not None:
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
                "Extract code/ and pass --code path/to/code (kdiag serve: --run-archive-code).",
            ))
    return target


def findings_on_endpoint(findings: list[Finding], *, multi_model: bool,
                         generation_name: str) -> list[Finding]:
    """The artifact's findings as this endpoint sees them. A 1.x image's multi-model container
    reads only the universal /opt/ml/models/code and ignores a model's own code/ (2.x images
    import it at load time), so there KD230 becomes a note that the code will not run."""
    if not (multi_model and generation_name == "G1"):
        return findings
    return [Finding("KD230", "info", "container",
                    "This model has code/inference.py, and a 1.x multi-model container ignores a "
                    "model's own code/: it runs only the endpoint's universal code "
                    "(/opt/ml/models/code), so the request path is predicted without it.",
                    "Put the handlers in the universal code folder (kdiag serve --multi-model "
                    "DIR --code CODE), or use a 2.x image, which loads a model's own code/.")
            if f.code == "KD230" else f for f in findings]


def resolve_target(arg: str, *, signature_name: str | None = None, model_name: str | None = None,
                   code_dir: Path | None = None, artifact: ModelArtifact | None = None
                   ) -> Target:
    """`--signature`: a signature JSON file or a model (pass `artifact` when it is already
    read, so a large archive is not decompressed twice)."""
    p = Path(arg)
    if artifact is None and p.is_file() and p.suffix.lower() == ".json":
        target = Target(signatures=load_signatures(arg))
        if model_name:
            target.model_name = model_name
    else:
        target = target_from_artifact(artifact or read_model(p), code_dir=code_dir,
                                      model_name=model_name)
    pick_signature(target.signatures, signature_name)  # fail early on a wrong name
    return target


SIGNATURE_FILE_BYTES = 64 << 20  # a signature file is kilobytes; anything near this is hostile


def load_signatures(arg: str) -> list[Signature]:
    """`--signature` takes a model path or a signature JSON file; both give the same values."""
    p = Path(arg)
    if p.is_file() and p.suffix.lower() == ".json":
        from kdiag.safe_io import read_regular

        data = read_regular(p, SIGNATURE_FILE_BYTES, what="signature file ")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            # RecursionError: a hostile file nesting deeper than the parser's stack
            raise KdiagError(f"Cannot read signature file {arg}: {e}.") from None
        return signatures_from_json(doc)
    model = read_model(p)
    if not model.signatures:
        raise KdiagError(f"{arg} has no serving signatures that kdiag could read; "
                         "export it with model.export() and point --signature at the export.")
    return model.signatures


def load_signature(arg: str, name: str | None = None) -> Signature:
    """The one signature `--signature`/`--signature-name` name."""
    return pick_signature(load_signatures(arg), name)
