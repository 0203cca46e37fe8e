"""Reading model artifacts: SavedModel folders, version parents, model.tar.gz, .keras and .h5.

`read_model` is the one entry point. It never imports TensorFlow and never runs user code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kdiag.diagnosis.findings import Finding
from kdiag.errors import KdiagError
from kdiag.model import layout as layout_rules
from kdiag.model.archive import ArchiveScan, read_member, scan_archive
from kdiag.model.code_lint import lint_inference_py
from kdiag.model.graph_trust import FileOp, file_op_findings
from kdiag.model.keras_file import KerasInfo, read_h5, read_keras
from kdiag.model.regular_file import read_regular_file
from kdiag.model.savedmodel import SavedModelInfo, parse_saved_model, read_saved_model
from kdiag.model.signature import Signature
from kdiag.model.signature_lint import lint_signatures

MAX_WALK_ENTRIES = 100_000
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass
class ModelArtifact:
    path: str
    kind: str  # "savedmodel" | "versions" | "archive" | "keras" | "h5"
    signatures: list[Signature] = field(default_factory=list)
    model_name: str | None = None
    version: str | None = None
    tensorflow_version: str | None = None
    tag_sets: list[list[str]] = field(default_factory=list)
    layout: layout_rules.Layout | None = None
    keras: KerasInfo | None = None
    savedmodel_dir: Path | None = None  # on disk, when there is one (to run it)
    findings: list[Finding] = field(default_factory=list)
    file_ops: list[FileOp] = field(default_factory=list)  # file-touching ops serving can run

    @property
    def default_signature(self) -> Signature | None:
        return next((s for s in self.signatures if s.name == "serving_default"), None)


def _is_archive(p: Path) -> bool:
    return p.name.lower().endswith(ARCHIVE_SUFFIXES)


def _walk(root: Path) -> tuple[list[str], list[str]]:
    files, dirs = [], []
    count = 0
    for cur, dnames, fnames in os.walk(root, followlinks=False):
        rel = Path(cur).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dnames[:] = sorted(d for d in dnames if not d.startswith("."))
        dirs.extend(prefix + d for d in dnames)
        files.extend(prefix + f for f in sorted(fnames))
        count += len(dnames) + len(fnames)
        if count > MAX_WALK_ENTRIES:
            raise KdiagError(f"{root} holds more than {MAX_WALK_ENTRIES} entries: point kdiag at "
                             "the model folder itself.")
    return files, dirs


def _serving_signatures(info: SavedModelInfo, source: str, art: ModelArtifact
                        ) -> tuple[list[Signature], list[list[str]], str | None, list[Finding]]:
    tag_sets = [mg.tags for mg in info.meta_graphs]
    serving = info.serving()
    if serving is None:
        return [], tag_sets, None, [Finding(
            "KD019", "error", "artifact",
            f"{source} has no meta graph tagged 'serve' (tag-sets: {tag_sets}): TF Serving "
            "loads only the 'serve' tag-set and fails to load this model.",
            "Export for serving: model.export(path) or tf.saved_model.save(model, path).",
        )]
    sigs = [s for s in serving.signatures if not s.name.startswith("__")]
    art.file_ops = serving.file_ops
    return sigs, tag_sets, serving.tensorflow_version, file_op_findings(serving.file_ops, source)


def _from_savedmodel_dir(p: Path, art: ModelArtifact) -> None:
    info = read_saved_model(p)
    sigs, tags, tfv, findings = _serving_signatures(info, str(p), art)
    art.signatures, art.tag_sets, art.tensorflow_version = sigs, tags, tfv
    art.savedmodel_dir = p
    art.findings += findings
    if p.name.isdigit():
        art.model_name, art.version = p.resolve().parent.name, p.name
        art.findings.append(Finding(
            "KD005", "info", "artifact",
            f"Packaged from its parent folder ({p.parent.name}/), the container serves this as "
            f"version {int(p.name)}; at the root of model.tar.gz (tar -czf model.tar.gz "
            f"{p.name}) the model is named 'model'.", ""))
    else:
        art.findings.append(Finding(
            "KD006", "warning", "artifact",
            f"{p.name}/ is a SavedModel but not an all-digit version folder: packaged as it is, "
            "the container finds no model.",
            f"Package it under a version folder: mkdir -p pkg/1 && cp -r {p}/* pkg/1/ && "
            "tar -czf model.tar.gz -C pkg 1",
        ))


def _from_layout(files: list[str], dirs: list[str], read_pb, art: ModelArtifact,
                 root_name: str | None, read_code) -> None:
    lay = layout_rules.analyse(files, dirs)
    art.layout = lay
    art.findings += lay.findings
    if lay.inference_py:
        art.findings += lint_inference_py(read_code(lay.inference_py), lay.inference_py)
    default = lay.default_model
    if default is None:
        return
    served = default.served_version
    art.model_name = default.name if default.base or root_name is None else root_name
    art.version = served
    pb_rel = default.pb_path(served) if served in default.loadable_versions else None
    if pb_rel is None:
        return
    info = parse_saved_model(read_pb(pb_rel), pb_rel)
    sigs, tags, tfv, findings = _serving_signatures(info, pb_rel, art)
    art.signatures, art.tag_sets, art.tensorflow_version = sigs, tags, tfv
    art.findings += findings


def archive_findings(scan: ArchiveScan) -> list[Finding]:
    """One finding per member kdiag will not write: escaping names and links leading out
    (KD012, error), links inside the archive (KD050) and special files (KD051)."""
    out = []
    for u in scan.unsafe:
        if u.kind == "name" or "leading out" in u.reason or "absolute" in u.reason:
            out.append(Finding(
                "KD012", "error", "artifact",
                f"Archive member {u.name!r} is unsafe ({u.reason}): extracting it could write "
                "outside the model folder. kdiag will not extract it"
                + (" (nor the archive)." if u.kind == "name" else "."),
                "Rebuild the archive from the model folder with relative paths and no links: "
                "tar -czf model.tar.gz -C export 1 code",
            ))
        elif u.kind == "link":
            out.append(Finding(
                "KD050", "warning", "artifact",
                f"Archive member {u.name!r} is a {u.reason}: a model archive needs no links, "
                "and kdiag never extracts them (links are how crafted archives write outside "
                "the extraction folder), so a replay runs without it.",
                "Replace the link with the file itself (tar -h follows links when packing): "
                "tar -czhf model.tar.gz -C export 1 code",
            ))
        else:
            out.append(Finding(
                "KD051", "warning", "artifact",
                f"Archive member {u.name!r} is a {u.reason}: kdiag does not extract it.",
                "Pack only the model's regular files and folders.",
            ))
    return out


def read_model(path: str | Path) -> ModelArtifact:
    """Read any supported artifact; raise KdiagError for what cannot be read at all."""
    p = Path(path)
    if not p.exists():
        raise KdiagError(f"{p} does not exist. Give a SavedModel folder, a folder of numeric "
                         "version folders, a model.tar.gz, or a .keras/.h5 file.")
    if p.is_dir():
        if (p / "saved_model.pb").is_file():
            art = ModelArtifact(path=str(p), kind="savedmodel")
            _from_savedmodel_dir(p, art)
        else:
            art = ModelArtifact(path=str(p), kind="versions")
            files, dirs = _walk(p)
            _from_layout(files, dirs, lambda rel: read_regular_file(p / rel, "graph_bytes"), art,
                         p.resolve().name,
                         lambda rel: read_regular_file(p / rel, "read_bytes").decode("utf-8", "replace"))
            if art.layout and art.layout.default_model and art.version:
                d = art.layout.default_model
                art.savedmodel_dir = p / d.base / art.version if d.base else p / art.version
                if not d.base:
                    art.findings.append(Finding(
                        "KD005", "info", "artifact",
                        f"Packed as model.tar.gz with the version folders at its root, the "
                        f"container names this model 'model', not {p.resolve().name!r}: use "
                        "that name in tfs-model-name.", ""))
    elif _is_archive(p):
        art = ModelArtifact(path=str(p), kind="archive")
        scan = scan_archive(p, want=lambda n: n.endswith("saved_model.pb") or n == "code/inference.py")
        art.findings += archive_findings(scan)

        def member(rel: str) -> bytes:
            return scan.contents[rel] if rel in scan.contents else read_member(p, rel)

        _from_layout(scan.files, scan.dirs, member, art, None,
                     lambda rel: member(rel).decode("utf-8", "replace"))
    elif p.suffix.lower() == ".keras":
        art = ModelArtifact(path=str(p), kind="keras", keras=read_keras(p))
    elif p.suffix.lower() in (".h5", ".hdf5"):
        art = ModelArtifact(path=str(p), kind="h5", keras=read_h5(p))
    elif p.name == "saved_model.pb":
        return read_model(p.parent)
    else:
        raise KdiagError(f"{p} is not a model kdiag can read: give a SavedModel folder, a folder "
                         "of numeric version folders, a model.tar.gz, or a .keras/.h5 file.")
    if art.keras is not None:
        art.findings.append(Finding(
            "KD003", "error", "artifact",
            f"{p.name} is a Keras file: the SageMaker TF Serving container cannot serve it.",
            "Export a SavedModel for serving: keras.saving.load_model(...).export('export/1'), "
            "then tar -czf model.tar.gz -C export 1",
        ))
    art.findings += lint_signatures(art.signatures, have_savedmodel=art.kind not in ("keras", "h5")
                                    and (art.layout is None or bool(art.layout.models)))
    return art
