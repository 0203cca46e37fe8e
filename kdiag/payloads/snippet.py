"""The boto3 call that sends a payload: plain text, so showing it needs no numpy."""

from __future__ import annotations


def boto3_snippet(endpoint_name: str, body: str, content_type: str,
                  accept: str = "application/json") -> str:
    """The Python a user runs to send `body` to a live endpoint and decode the answer.

    Shown next to a payload so that what kdiag checked offline is exactly what gets sent:
    same bytes, same Content-Type, same Accept.
    """
    return (
        "import json\n"
        "\n"
        "import boto3\n"
        "\n"
        'runtime = boto3.client("sagemaker-runtime")\n'
        "response = runtime.invoke_endpoint(\n"
        f"    EndpointName={endpoint_name!r},\n"
        f"    ContentType={content_type!r},\n"
        f"    Accept={accept!r},\n"
        f"    Body={body!r},\n"
        ")\n"
        'result = json.loads(response["Body"].read())\n'
        "print(result)\n"
    )
