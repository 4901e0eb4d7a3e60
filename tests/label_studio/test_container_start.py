"""The deployed container's first command, run here as ECS runs it: `python3 -c <fetch_and_start.py's text>`
(label_studio_plugin/; the stack's test checks that the task definition's entry point is exactly that text), with
the plugin folder zipped as CDK zips an asset and fetched from (moto's) S3, then Label Studio under uwsgi with the
access rules."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import boto3
import requests

from sandbox.emulator import MotoServer, free_port, stop_process_group
from sandbox.label_studio_server import LS_PYTHON, PLUGIN_DIR, environment, migrated_template
from tests.label_studio.pipeline_world import until

FETCH_AND_START = PLUGIN_DIR / "fetch_and_start.py"
TOKEN = "3333333333cccccccccc3333333333cccccccccc"


def zipped_plugin(target: Path) -> Path:
    """The folder as an asset zip: its files at the archive's root, no bytecode."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(PLUGIN_DIR.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(PLUGIN_DIR))
    return target


def test_the_container_fetches_the_plugin_and_serves_label_studio_behind_its_rules(
    moto_s3_server: MotoServer, tmp_path: Path
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_s3_server.url)
    s3.create_bucket(Bucket="cdk-assets-123456789012-us-east-1")
    s3.upload_file(str(zipped_plugin(tmp_path / "plugin.zip")), "cdk-assets-123456789012-us-east-1", "0a1b2c.zip")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "label_studio.sqlite3").write_bytes(migrated_template().read_bytes())
    port = free_port()
    env = {
        **environment(data_dir, email="admin@example.com", password="Container-admin-9", token=TOKEN),
        "LABELING_PLUGIN_S3_URI": "s3://cdk-assets-123456789012-us-east-1/0a1b2c.zip",
        "LABELING_PLUGIN_REGION": "us-east-1",
        "LABELING_PLUGIN_DIR": str(tmp_path / "unpacked"),
        "AWS_ENDPOINT_URL_S3": moto_s3_server.url,
        # Only what the task gets: no path to this repository's plugin folder.
        "PYTHONPATH": "",
        "UWSGI_PROCESSES": "1",
    }
    log = tmp_path / "container.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(LS_PYTHON), "-c", FETCH_AND_START.read_text(), "--bind", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        until(lambda: _healthy(url) or process.poll() is not None, timeout=120)
        assert process.poll() is None, log.read_text()[-3000:]
        text = log.read_text()
        assert "from s3://cdk-assets-123456789012-us-east-1/0a1b2c.zip unpacked into" in text
        assert "administrator admin@example.com: created" in text and "uWSGI" in text
        assert (tmp_path / "unpacked" / "labeling_gate" / "middleware.py").exists()
        whoami = requests.get(f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {TOKEN}"}, timeout=30)
        assert whoami.json()["email"] == "admin@example.com"
        # The access rules are the ones from S3: the invite link is an administrator's only.
        anonymous = requests.get(f"{url}/api/invite", timeout=30)
        assert (anonymous.status_code, anonymous.headers.get("X-Labeling-Gate")) == (401, "refused")
    finally:
        if process.poll() is None:
            stop_process_group(process)
    assert os.path.getsize(log) > 0


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).ok
    except requests.RequestException:
        return False
