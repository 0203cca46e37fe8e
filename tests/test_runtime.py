"""The runtime stage: what boto3 sees. The HTTP responses are fed to botocore's own rest-json
parser with the real sagemaker-runtime service model, so the exception boto3 raises is checked
without a network."""

import json

import botocore.session
import pytest
from botocore import parsers
from botocore.awsrequest import HeadersDict

from kdiag.path.runtime import MESSAGE_MAX, runtime_outcome, validation_error

TFS_ERROR = '{"error": "Type: String is not of expected type: float"}'


def parse(outcome):
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    op = model.operation_model("InvokeEndpoint")
    parser = parsers.create_parser("rest-json")
    response = {"status_code": outcome.http_status,
                "headers": HeadersDict(outcome.http_headers),
                "body": outcome.http_body}
    parsed = parser.parse(response, op.output_shape)
    if outcome.http_status >= 300:
        code = parsed["Error"]["Code"]
        shape = model.shape_for_error_code(code)
        if shape is not None:  # what botocore's client does for modelled errors
            parsed.update(parser.parse(response, shape))
    return parsed


def test_container_400_becomes_model_error_424():
    o = runtime_outcome(400, TFS_ERROR, "application/json", endpoint_name="model-demo",
                        request_id="d794cc46-d471-4ace-9963-df19ca0fb142")
    assert o.http_status == 424 and o.http_headers["x-amzn-ErrorType"] == "ModelError"
    # the verified body of aws-apis-detail.md §6.3
    assert o.http_body.decode() == (
        '{"ErrorCode": "CLIENT_ERROR_FROM_MODEL", "LogStreamArn": "arn:aws:logs:us-east-1:'
        '123456789012:log-group:/aws/sagemaker/Endpoints/model-demo", "Message": "Received client '
        'error (400) from primary with message \\"{\\"error\\": \\"Type: String is not of expected '
        'type: float\\"}\\". See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region='
        'us-east-1#logEventViewer:group=/aws/sagemaker/Endpoints/model-demo in account '
        '123456789012 for more information.", "OriginalMessage": "{\\"error\\": \\"Type: String '
        'is not of expected type: float\\"}", "OriginalStatusCode": 400}')


def test_botocore_parses_model_error_fields():
    o = runtime_outcome(400, TFS_ERROR, "application/json", endpoint_name="demo")
    parsed = parse(o)
    assert parsed["Error"]["Code"] == "ModelError"
    assert parsed["Error"]["Message"] == o.message
    assert parsed["OriginalStatusCode"] == 400
    assert parsed["OriginalMessage"] == TFS_ERROR
    assert parsed["LogStreamArn"] == o.log_stream_arn
    for key in ("Message", "OriginalStatusCode", "OriginalMessage", "LogStreamArn"):
        assert o.boto[key] == parsed[key]


def test_server_error_wording_for_5xx():
    o = runtime_outcome(500, '{"error": "boom"}', "application/json")
    assert o.message.startswith('Received server error (500) from primary with message '
                                '"{"error": "boom"}". See https://')
    assert o.exception_text.startswith("An error occurred (ModelError) when calling the "
                                       "InvokeEndpoint operation: Received server error (500)")


def test_original_message_is_capped_at_the_service_model_limit():
    o = runtime_outcome(400, "x" * 5000, "text/plain")
    assert len(o.original_message) == MESSAGE_MAX == 2048
    assert "KD662" in [f.code for f in o.findings]


def test_html_error_page_is_noted():
    o = runtime_outcome(502, "<html>\r\n<head>...", "text/html")
    assert "KD663" in [f.code for f in o.findings] and o.original_status_code == 502


def test_timeout_message():
    o = runtime_outcome(None, None, None)
    assert o.message.startswith('Received server error (0) from primary with message "Your '
                                "invocation timed out while waiting for a response from "
                                "container primary.")


def test_2xx_is_returned_as_body_even_with_an_error_inside():
    o = runtime_outcome(200, TFS_ERROR, "application/json", variant="v1")
    assert o.ok and o.http_status == 200 and o.http_body == TFS_ERROR.encode()
    parsed = parse(o)
    assert parsed["ContentType"] == "application/json"
    assert parsed["InvokedProductionVariant"] == "v1"
    assert o.boto["Body"] == TFS_ERROR.encode()


def test_validation_error_is_parsed_as_such():
    o = validation_error("Request has oversize body.")
    parsed = parse(o)
    assert parsed["Error"]["Code"] == "ValidationError"
    assert parsed["Error"]["Message"] == "Request has oversize body."


@pytest.mark.parametrize("status", [400, 404, 415, 429, 500, 502, 503, 504])
def test_every_non_2xx_is_model_error_with_original_status(status):
    o = runtime_outcome(status, "b", None)
    assert parse(o)["OriginalStatusCode"] == status
    assert json.loads(o.http_body)["OriginalStatusCode"] == status
