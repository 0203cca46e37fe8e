"""Which generation of the SageMaker TensorFlow Serving container serves a framework version.

The container's request handling changed three times and several times within a generation, and
the changes alter status codes and the forwarded JSON. Every container rule in kdiag reads its
behaviour from a `Generation` value instead of testing version strings, so a quirk is decided in
exactly one place (here), with the commit that introduced it.

Sources (read with git):
- G1 legacy: aws/sagemaker-tensorflow-serving-container @ da192561 (docker/build_artifacts/sagemaker/).
- G2 DLC:    aws/deep-learning-containers @ 6712253d3b (tensorflow/inference/docker/build_artifacts/sagemaker/).
- G3 DLC:    aws/deep-learning-containers @ e0ecedea6a (scripts/docker/tensorflow/inference/sagemaker/),
             introduced by 86bef99963 "add TF Serving 2.20 inference DLC on AL2023".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Literal

from kdiag.errors import KdiagError

AcceptRule = Literal["exact-jsonlines", "first-listed", "json-only"]

# Boundaries inside G1 and G2 (commit dates).
# G1 Accept rule: v1.7.0 exact match on jsonlines/jsons; v1.8.0 (2021-03-23) the list rule.
G1_ACCEPT_LIST_FROM = date(2021, 3, 23)
# G1 1a265dbd (2022-07-08) "Swap order of processing json_request": TFS check before JSON lines.
G1_TFS_FIRST_FROM = date(2022, 7, 8)
# DLC db4dc591dc (2021-04-08) "Sync changes from tfs repo": the list Accept rule.
G2_ACCEPT_LIST_FROM = date(2021, 4, 8)
# DLC 92bac823de (2022-08-11) "Swap order on json_request".
G2_TFS_FIRST_FROM = date(2022, 8, 11)
# DLC beb9f5b3e0 (2023-03-16): serve.py starts the Python service for requirements.txt or lib too.
G2_REQUIREMENTS_PYTHON_FROM = date(2023, 3, 16)
# DLC f150c850e6 (2023-08-04): njs reads r.requestText (UTF-8 text) instead of r.requestBody.
G2_REQUEST_TEXT_FROM = date(2023, 8, 4)
# DLC 7cea6236bd (2020-11-11): the Python default handler decodes the body as UTF-8 first.
G2_DEFAULT_HANDLER_DECODES_FROM = date(2020, 11, 11)

# Approximate GA dates of the tensorflow-inference DLC per minor version [inferred from TF release
# dates; 2.14, 2.16 and 2.18 from docs/src/legacy/legacy_support.yml in deep-learning-containers].
# A version's images keep being rebuilt for about a year (the DLC support policy), so the newest
# image of a version is estimated as GA + 365 days.
_DLC_GA: dict[tuple[int, int], date] = {
    (2, 2): date(2020, 5, 20), (2, 3): date(2020, 8, 20), (2, 4): date(2021, 1, 20),
    (2, 5): date(2021, 6, 1), (2, 6): date(2021, 9, 1), (2, 7): date(2021, 11, 20),
    (2, 8): date(2022, 2, 20), (2, 9): date(2022, 5, 30), (2, 10): date(2022, 9, 20),
    (2, 11): date(2022, 12, 1), (2, 12): date(2023, 4, 20), (2, 13): date(2023, 7, 20),
    (2, 14): date(2023, 9, 26), (2, 15): date(2024, 1, 10), (2, 16): date(2024, 3, 7),
    (2, 17): date(2024, 8, 1), (2, 18): date(2024, 10, 24), (2, 19): date(2025, 4, 1),
}
_SUPPORT = timedelta(days=365)

NEWEST = (2, 20)


@dataclass(frozen=True)
class Generation:
    """One container generation, with every behaviour switch kdiag's emulation reads."""

    name: Literal["G1", "G2", "G3"]
    label: str
    framework_version: str | None
    tfs_version: str | None  # TF Serving ships with the same X.Y as the framework
    image_date: date | None  # the image build date the switches below assume
    image_date_estimated: bool
    # Content-Type gate: "exact" compares the raw header (G1/G2 tensorflowServing.js l.7-9);
    # "normalised" cuts at ';', trims and lower-cases (G3 tensorflowServing.js l.5).
    content_type_gate: Literal["exact", "normalised"]
    # JSON dispatcher order: TFS pass-through checked before JSON lines (after the 2022 swap).
    tfs_check_first: bool
    csv_converter: Literal["legacy", "fields"]
    accept_rule: AcceptRule
    # G3 validates tfs-* custom attributes (400 "invalid ..."); G1/G2 forward them as they are.
    validates_attributes: bool
    # Python path split of "k=v": "strict" (G1/G2 split("=") -> ValueError when the value has '=')
    # or "first" (G3 split("=", 1)).
    python_attribute_split: Literal["strict", "first"]
    # Which files under code/ switch on the Python service (serve.py _need_python_service).
    python_triggers: tuple[str, ...]
    # G1/G2 set 200 before calling handlers; G3 raises falcon.HTTPError on TFS non-200.
    propagates_tfs_errors: bool
    # G3's Python default handler answers 415 for content types it does not know.
    default_handler_gate: bool
    # G3 adds `timeout` to the handler context (SAGEMAKER_TFS_WAIT_TIME_SECONDS, default 60).
    context_fields: tuple[str, ...]
    falcon_major: int
    # How `requests` encodes a str body: urllib3 1.x hands it to http.client (Latin-1);
    # urllib3 2.x encodes UTF-8. Errata §2: requests 2.22-2.27 in DLC TF 2.2-2.11.
    str_body_encoding: Literal["latin-1", "utf-8"]
    # njs r.requestBody (raw bytes) before 2023-08 vs r.requestText (UTF-8, invalid bytes replaced).
    njs_body_access: Literal["requestBody", "requestText"]
    default_handler_decodes: bool
    source: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def tfs_minor(self) -> tuple[int, int] | None:
        return _parse_version(self.tfs_version) if self.tfs_version else None


_CONTEXT_G12 = ("model_name", "model_version", "method", "rest_uri", "grpc_port", "channel",
                "custom_attributes", "request_content_type", "accept_header", "content_length")
_CONTEXT_G3 = (*_CONTEXT_G12, "timeout")

_G1_SOURCE = ("aws/sagemaker-tensorflow-serving-container@da192561 "
              "docker/build_artifacts/sagemaker/")
_G2_SOURCE = ("aws/deep-learning-containers@6712253d3b "
              "tensorflow/inference/docker/build_artifacts/sagemaker/")
_G3_SOURCE = ("aws/deep-learning-containers@e0ecedea6a "
              "scripts/docker/tensorflow/inference/sagemaker/")


def _parse_version(text: str) -> tuple[int, int] | None:
    m = re.match(r"\s*v?(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _to_date(value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError as e:
        raise KdiagError(f"image date {value!r} is not an ISO date (YYYY-MM-DD).") from e


def _g1(fv: str | None, tfs: str | None, when: date | None, estimated: bool) -> Generation:
    d = when or date.max
    return Generation(
        name="G1", label="sagemaker-tensorflow-serving-container (legacy)",
        framework_version=fv, tfs_version=tfs, image_date=when, image_date_estimated=estimated,
        content_type_gate="exact", tfs_check_first=d >= G1_TFS_FIRST_FROM,
        csv_converter="legacy",
        accept_rule="first-listed" if d >= G1_ACCEPT_LIST_FROM else "exact-jsonlines",
        validates_attributes=False, python_attribute_split="strict",
        python_triggers=("inference.py",), propagates_tfs_errors=False,
        default_handler_gate=False, context_fields=_CONTEXT_G12, falcon_major=2,
        str_body_encoding="latin-1", njs_body_access="requestBody",
        default_handler_decodes=True, source=_G1_SOURCE)


def _g2(fv: str | None, tfs: str | None, minor: tuple[int, int] | None, when: date | None,
        estimated: bool) -> Generation:
    d = when or date.max
    minor = minor or (2, 19)
    return Generation(
        name="G2", label="deep-learning-containers tensorflow-inference 2.2-2.19",
        framework_version=fv, tfs_version=tfs, image_date=when, image_date_estimated=estimated,
        content_type_gate="exact", tfs_check_first=d >= G2_TFS_FIRST_FROM,
        csv_converter="legacy",
        accept_rule="first-listed" if d >= G2_ACCEPT_LIST_FROM else "exact-jsonlines",
        validates_attributes=False, python_attribute_split="strict",
        python_triggers=(("inference.py", "requirements.txt", "lib")
                         if d >= G2_REQUIREMENTS_PYTHON_FROM else ("inference.py",)),
        propagates_tfs_errors=False, default_handler_gate=False, context_fields=_CONTEXT_G12,
        # errata §14: falcon 2.0.0 in TF 2.2-2.6 images, falcon 3.x from 2.7.
        falcon_major=2 if minor <= (2, 6) else 3,
        str_body_encoding="latin-1" if minor <= (2, 11) else "utf-8",
        njs_body_access="requestText" if d >= G2_REQUEST_TEXT_FROM else "requestBody",
        default_handler_decodes=d >= G2_DEFAULT_HANDLER_DECODES_FROM, source=_G2_SOURCE)


def _g3(fv: str | None, tfs: str | None) -> Generation:
    return Generation(
        name="G3", label="deep-learning-containers tensorflow-inference 2.20+",
        framework_version=fv, tfs_version=tfs, image_date=None, image_date_estimated=False,
        content_type_gate="normalised", tfs_check_first=True, csv_converter="fields",
        accept_rule="json-only", validates_attributes=True, python_attribute_split="first",
        python_triggers=("inference.py", "requirements.txt", "lib"),
        propagates_tfs_errors=True, default_handler_gate=True, context_fields=_CONTEXT_G3,
        falcon_major=3,  # falcon==3.1.0 pinned (errata §1)
        str_body_encoding="utf-8", njs_body_access="requestText",
        default_handler_decodes=True, source=_G3_SOURCE)


def generation_for(framework_version: str | None, *, image_date: date | str | None = None
                   ) -> Generation:
    """The container generation (and its dated quirks) that serves `framework_version`.

    "1.x", "2.0" and "2.1" -> G1; "2.2" to "2.19" -> G2; "2.20" and later -> G3; None -> newest.
    "G1"/"G2"/"G3" name a generation directly (newest code of it). Without `image_date`, G1/G2
    assume the newest image of that version (estimated as its DLC GA date plus the one-year support
    window), which is what the SageMaker SDK pulls for a version tag; pass the image's build date
    to model an older image.
    """
    when = _to_date(image_date)
    if framework_version is None:
        return _g3(None, f"{NEWEST[0]}.{NEWEST[1]}")
    text = framework_version.strip()
    named = text.upper()
    if named in ("G1", "G2", "G3"):
        if named == "G1":
            return _g1(None, None, when, False)
        if named == "G2":
            return _g2(None, None, None, when, False)
        return _g3(None, None)
    minor = _parse_version(text)
    if minor is None:
        raise KdiagError(
            f"framework version {framework_version!r} is not of the form X.Y (e.g. 2.13), nor "
            "G1/G2/G3: pass the TensorFlow version of the inference image.")
    tfs = f"{minor[0]}.{minor[1]}"
    if minor <= (2, 1):
        return _g1(text, tfs, when, False)
    if minor <= (2, 19):
        estimated = False
        if when is None:
            ga = _DLC_GA.get(minor)
            if ga is not None:
                when, estimated = ga + _SUPPORT, True
        gen = _g2(text, tfs, minor, when, estimated)
        if estimated:
            gen = replace(gen, notes=(
                f"image date assumed {when.isoformat()} (newest {tfs} image, estimated); pass "
                "image_date for an older image",))
        return gen
    return _g3(text, tfs)


OLDEST_1X = (1, 11)  # the first TF Serving image of sagemaker-tensorflow-serving-container


def check_framework_version(text: str) -> str:
    """`text` when it names a container kdiag can emulate; ValueError listing the valid
    choices otherwise (a typo such as 9.99 must not silently pick the newest generation)."""
    named = text.strip().upper()
    if named in ("G1", "G2", "G3"):
        return text.strip()
    minor = _parse_version(text) if re.fullmatch(r"\s*v?\d+\.\d+(\.\d+)?\s*", text) else None
    if minor is None or not (OLDEST_1X <= minor <= (1, 15) or (2, 0) <= minor <= NEWEST):
        raise ValueError(
            f"{text!r} is not a TensorFlow version of a SageMaker TF Serving image; valid: "
            f"1.{OLDEST_1X[1]} to 1.15, 2.0 to {NEWEST[0]}.{NEWEST[1]} (X.Y or X.Y.Z), or a "
            "container generation G1, G2, G3")
    return text.strip()


_LAST_DECODED: tuple[bytes, str | None] = (b"", "")


def decode_utf8(body: bytes) -> str | None:
    """`body` as UTF-8 text, or None when it is not UTF-8.

    The wire and container stages decode the same bytes object one after the other; the last
    result is kept (by identity) so a large body is decoded once.
    """
    global _LAST_DECODED
    last = _LAST_DECODED
    if last[0] is body:
        return last[1]
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    _LAST_DECODED = (body, text)
    return text


@dataclass
class Request:
    """What reaches the endpoint: the body and the headers the container reads.

    `None` headers were not sent. A str body is taken as its UTF-8 encoding.
    """

    body: bytes
    content_type: str | None
    accept: str | None = None
    custom_attributes: str | None = None

    @property
    def body_bytes(self) -> bytes:
        body = self.body
        if body is None:
            return b""
        if isinstance(body, str):
            return body.encode("utf-8", "surrogatepass")
        return bytes(body)
