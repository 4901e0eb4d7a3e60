"""The Label Studio test server and the browser that works in it, as the backend's tests and demo use them.

A worker draws a box in Label Studio's own UI on an image kept in (moto's) S3; the annotation Label Studio
stores must be the box the mouse drew, in the image's pixels, on a non-square image.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from PIL import Image

from sandbox.emulator import MotoServer
from sandbox.label_studio_browser import draw_box
from sandbox.label_studio_server import LabelStudioServer

LABEL_CONFIG = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
    '<Label value="Cat"/><Label value="Dog"/></RectangleLabels></View>'
)
BUCKET = "label-studio-images"
WIDTH, HEIGHT = 800, 600


def api(server: LabelStudioServer, method: str, path: str, **kwargs: Any) -> Any:
    response = requests.request(method, f"{server.url}{path}", headers=server.headers, timeout=30, **kwargs)
    assert response.ok, f"{method} {path}: {response.status_code} {response.text[:500]}"
    return response.json()


def emails(server: LabelStudioServer) -> set[str]:
    return {user["email"] for user in api(server, "GET", "/api/users")}


def submit_form(server: LabelStudioServer, path: str, fields: dict[str, str]) -> requests.Response:
    """A browser-like form post: the page first (for Django's CSRF cookie), then the form."""
    session = requests.Session()
    session.get(f"{server.url}{path}", timeout=30).raise_for_status()
    return session.post(
        f"{server.url}{path}",
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"], **fields},
        allow_redirects=False,
        timeout=30,
    )


def signs_in(server: LabelStudioServer, email: str, password: str) -> bool:
    # A good sign-in redirects; a refused one shows the form again.
    return submit_form(server, "/user/login/", {"email": email, "password": password}).status_code == 302


def test_health_and_sign_up_closed_even_with_the_invite_link(label_studio: LabelStudioServer) -> None:
    assert requests.get(f"{label_studio.url}/health", timeout=10).ok
    fields = {"password": "stranger-password-1"}

    refused = submit_form(label_studio, "/user/signup/", {**fields, "email": "stranger@example.com"})
    assert (refused.status_code, refused.headers["X-Labeling-Gate"]) == (401, "refused")
    # The organization's own invite link, which Label Studio would honour, is refused too: workers are made
    # with `workers add` only (labeling_gate.routes).
    invite = api(label_studio, "GET", "/api/invite")["invite_url"]
    joined = submit_form(label_studio, invite, {**fields, "email": "invited@example.com"})
    assert (joined.status_code, joined.headers["X-Labeling-Gate"]) == (401, "refused")
    assert {"stranger@example.com", "invited@example.com"}.isdisjoint(emails(label_studio))


def put_image(moto: MotoServer, key: str) -> None:
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    # The browser fetches the image from the presigned URL, cross-origin (moto's server allows any origin
    # anyway; real S3 needs this).
    s3.put_bucket_cors(
        Bucket=BUCKET,
        CORSConfiguration={
            "CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["*"]}]
        },
    )
    # Not uniform, so a wrongly placed or scaled image would show in the screenshots.
    image = Image.new("RGB", (WIDTH, HEIGHT), (30, 60, 200))
    image.paste((240, 200, 40), (WIDTH // 2, HEIGHT // 2, WIDTH, HEIGHT))
    body = io.BytesIO()
    image.save(body, format="PNG")
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.getvalue(), ContentType="image/png")


def test_a_worker_draws_a_box_that_label_studio_stores_in_image_pixels(
    chromium: str, label_studio: LabelStudioServer, moto_s3_server: MotoServer, tmp_path: Path
) -> None:
    put_image(moto_s3_server, "incoming/street.png")
    project = api(label_studio, "POST", "/api/projects", json={"title": "Boxes", "label_config": LABEL_CONFIG})
    storage = {
        "project": project["id"],
        "bucket": BUCKET,
        "prefix": "incoming/",
        "presign": True,
        "presign_ttl": 15,
        "region_name": "us-east-1",
        "s3_endpoint": moto_s3_server.url,
    }
    api(label_studio, "POST", "/api/storages/s3", json=storage)
    # No sync: the task is imported by its S3 URI, which the storage resolves to a presigned URL.
    imported = api(
        label_studio,
        "POST",
        f"/api/projects/{project['id']}/import?return_task_ids=true",
        json=[{"data": {"image": f"s3://{BUCKET}/incoming/street.png"}}],
    )
    (task_id,) = imported["task_ids"]

    # POST /api/users takes no password, and a user made so cannot sign in until one is set.
    worker, password = "worker@example.com", "worker-password-1"
    api(label_studio, "POST", "/api/users", json={"email": worker, "username": "worker"})
    assert not signs_in(label_studio, worker, password)
    label_studio.set_password(worker, password)

    drawn = draw_box(
        label_studio.url, worker, password, project["id"], "Dog", (0.2, 0.3), (0.6, 0.7), screenshot_dir=tmp_path
    )

    (annotation,) = api(label_studio, "GET", f"/api/tasks/{task_id}/annotations")
    (result,) = [r for r in annotation["result"] if r["type"] == "rectanglelabels"]
    assert result["value"]["rectanglelabels"] == ["Dog"]
    width, height = result["original_width"], result["original_height"]
    assert (width, height) == (WIDTH, HEIGHT)
    value = result["value"]
    x, y = value["x"] * width / 100, value["y"] * height / 100
    stored = (x, y, x + value["width"] * width / 100, y + value["height"] * height / 100)
    assert stored == pytest.approx(drawn, abs=2), f"stored {stored}, drawn {drawn}"
    assert drawn == pytest.approx((160, 180, 480, 420), abs=2)
