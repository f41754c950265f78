"""An S3 server for the tests: moto's, in a thread of the test process on a free port (one per
session), and fixtures that point the settings at it.

- `s3`: a fresh bucket and the server's credentials in the settings (what a bucket import
  reads with); the storage stays local.
- `s3_storage`: the same bucket as the storage of images (STORAGE_BACKEND=s3), as the
  settings module builds it.
"""
import uuid
from dataclasses import dataclass

import pytest

ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing", "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint():
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def client(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY)


def media_storage_settings(bucket, endpoint, expire=300):
    """STORAGES["default"] for a bucket, as annotator/settings.py builds it for STORAGE_BACKEND=s3."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket, "endpoint_url": endpoint, "region_name": REGION, "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY, "file_overwrite": False, "default_acl": None, "querystring_auth": True,
            "querystring_expire": expire, "signature_version": "s3v4",
        },
    }


@dataclass
class Bucket:
    name: str
    endpoint: str

    @property
    def client(self):
        return client(self.endpoint)

    def put(self, key, data):
        self.client.put_object(Bucket=self.name, Key=key, Body=data)

    def keys(self, prefix=""):
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(entry["Key"] for page in pages for entry in page.get("Contents", []))


@pytest.fixture
def s3(settings, moto_endpoint):
    settings.AWS_S3_ENDPOINT_URL = moto_endpoint
    settings.AWS_S3_REGION_NAME = REGION
    settings.AWS_ACCESS_KEY_ID = ACCESS_KEY
    settings.AWS_SECRET_ACCESS_KEY = SECRET_KEY
    name = f"test-{uuid.uuid4().hex[:12]}"
    client(moto_endpoint).create_bucket(Bucket=name)
    return Bucket(name, moto_endpoint)


@pytest.fixture
def s3_storage(settings, s3):
    settings.STORAGE_BACKEND = "s3"
    settings.AWS_STORAGE_BUCKET_NAME = s3.name
    settings.MEDIA_DELIVERY = "presigned"
    settings.STORAGES = {**settings.STORAGES, "default": media_storage_settings(s3.name, s3.endpoint)}
    return s3
