"""The session's SeaweedFS speaks S3 to boto3 as AWS would: write, read back, refuse a bad identity."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sandbox.localstack import LocalStack


def s3_client(endpoint: str, access_key: str, secret_key: str):  # type: ignore[no-untyped-def]
    config = Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required")
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=config,
    )


def test_an_object_written_through_boto3_reads_back_identical(stack: LocalStack, unique: str) -> None:
    s3 = s3_client(stack.s3.endpoint, stack.s3.access_key, stack.s3.secret_key)
    bucket = f"ferry-{unique}"
    s3.create_bucket(Bucket=bucket)
    body = bytes(range(256)) * 4096
    s3.put_object(Bucket=bucket, Key="dir/object.bin", Body=body)
    assert s3.get_object(Bucket=bucket, Key="dir/object.bin")["Body"].read() == body
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/object.bin"]


def test_a_wrong_secret_is_refused(stack: LocalStack) -> None:
    s3 = s3_client(stack.s3.endpoint, stack.s3.access_key, "not-the-secret")
    with pytest.raises(ClientError) as refused:
        s3.list_buckets()
    assert refused.value.response["Error"]["Code"] in {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
    }
