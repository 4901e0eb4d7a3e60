# The deployed container's first command (stacks/backends/label_studio/server.py passes this file's text to
# `python3 -c`): fetch this folder from its S3 asset, unpack it, and start Label Studio with it
# (labeling_gate.start). Label Studio's image is used as published; nothing is built. Standard library and boto3
# only, which the image has (Label Studio depends on boto3). tests/label_studio/test_container_start.py runs this
# text against moto's S3.
import io
import os
import sys
import zipfile

import boto3

uri = os.environ["LABELING_PLUGIN_S3_URI"]
bucket, _, key = uri.removeprefix("s3://").partition("/")
target = os.environ.get("LABELING_PLUGIN_DIR", "/tmp/labeling-plugin")
client = boto3.client("s3", region_name=os.environ.get("LABELING_PLUGIN_REGION") or None)
archive = client.get_object(Bucket=bucket, Key=key)["Body"].read()
zipfile.ZipFile(io.BytesIO(archive)).extractall(target)
sys.path.insert(0, target)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [target, os.environ.get("PYTHONPATH", "")]))
print(f"labeling_gate: {len(archive)} bytes from {uri} unpacked into {target}", flush=True)

from labeling_gate.start import main  # noqa: E402

main(sys.argv[1:])
