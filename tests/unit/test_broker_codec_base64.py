"""The broker's codec refuses a structured event whose data_base64 does not decode (found by
fuzzing: the SDK dropped the bad characters and passed the event on with no data)."""

from __future__ import annotations

import json

import pytest

from t2v.broker.codec import STRUCTURED_CONTENT_TYPE, read_event
from t2v.errors import MalformedEventError

ATTRIBUTES = {"id": "1", "source": "/s", "type": "dev.t2v.job.submit", "specversion": "1.0"}
HEADERS = {"content-type": STRUCTURED_CONTENT_TYPE}


@pytest.mark.parametrize("encoded", ["!!!!", "a", "YQ", "e30=!", 12, None])
def test_bad_data_base64_is_malformed(encoded: object) -> None:
    body = json.dumps({**ATTRIBUTES, "data_base64": encoded}).encode()
    with pytest.raises(MalformedEventError) as raised:
        read_event(HEADERS, body)
    assert raised.value.field == "data_base64"


def test_good_data_base64_is_read() -> None:
    body = json.dumps({**ATTRIBUTES, "data_base64": "e30="}).encode()
    # The SDK hands decoded JSON data back parsed.
    assert read_event(HEADERS, body).get_data() == {}
