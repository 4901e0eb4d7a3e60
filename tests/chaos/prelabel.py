"""The pre-label stage in front of the launcher, for both chaos tests.

The uploads' S3 events go first to the pre-label queue (the SQS model of simulation.py: visibility, receive
counts, maxReceiveCount 5 and a dead-letter queue of its own, as stacks/constructs/prelabel/stage.py deploys it),
drained in batches of 1 to 10 by concurrent invocations of the real `PrelabelStage`. Its predictor is the red-box
ONNX detector of tests/lambda_code/prelabel, run on a small file per valid upload (PNG, JPEG or GIF, as its key
says): a red rectangle where the seed puts it, no rectangle, or a file cut short. A seeded share of the
predictor's calls raise (PredictionError, botocore's read timeout, an endpoint's ModelError) and another share
hang past the time the stage gives a prediction. S3 fails now and then, proposals writes more often;
SendMessageBatch fails whole or refuses single entries; one invocation is killed right after its forward went
through, so its messages come back and go on twice. What the stage forwards lands on the launcher's queue, which
each test then drains as before.

Time stands still in a simulated invocation (its clock is frozen), except while a prediction runs: the stage
waits PREDICTION_WINDOW real seconds for each, then leaves it behind and forwards the rest of its batch without
proposals, as a Lambda does near its timeout. A hang costs a fraction of a second, not a Lambda's five minutes.

`PrelabelRun.coverage` then checks what the stage left: it never raised; its dead-letter queue is empty once
drained (the stage forwards a message it cannot read, for the launcher to dead-letter with the reason, and lets an
image go on without proposals after two failed writes, so only forwards failing again and again exhaust a
message's receives; the drain redrives those as an operator would); each proposals file holds what the model finds
in its image, or no box for the held-out share, whose images were never predicted; and each valid image without a
file lost it to something the test injected or saw happen (the model failed, the image was unreadable, S3 failed,
the stage's time ran out), named by the last such thing that happened to it.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.response import StreamingBody
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from labeling_pipeline.images import ImageLimits, ImageRef
from labeling_pipeline.names import INPUT_PREFIX, PROPOSALS_PREFIX
from labeling_pipeline.prelabel.holdout import held_out
from labeling_pipeline.prelabel.predictors import OnnxPredictor, Prediction, PredictionError
from labeling_pipeline.prelabel.proposals import Proposal, proposal_key, read_proposals
from labeling_pipeline.prelabel.settings import PrelabelSettings
from labeling_pipeline.prelabel.stage import PrelabelStage, StageCounts
from tests.chaos.simulation import Flaky, InvocationFaults, Killed, Message, SimulatedQueue, Upload, drain
from tests.lambda_code.prelabel.test_predictors import red_box_onnx
from tests.support import BUCKET

MODEL_VERSION = "chaos-red-box-1"
PRELABEL = {
    "modelUri": "s3://models-example/chaos/red-box.onnx",
    "classMap": {"0": "Dog", "1": "Cat"},
    "modelVersion": MODEL_VERSION,
    # As small as the images: nothing is resized, so a box comes back to the pixel and a prediction costs 0.5 ms.
    "inputSize": 32,
    "holdOutPercent": 10,
}
IMAGE_SIZE = (32, 24)
BATCH_SIZE = 10  # PRELABEL_BATCH_SIZE, stacks/constructs/prelabel/stage.py
CONCURRENCY = 8
EMPTY_SCENES = 0.05  # no red: the red-box model boxes the whole image, a false positive
CUT_SHORT = 0.02  # the upload was interrupted: no decoder reads it
FAILING_CALLS = 0.05
HANGING_CALLS = 0.01
# Real seconds a prediction may run before the stage leaves it behind: a hundred times the 0.5 ms one takes. A
# call that the other threads slow past it (rare, on two cores) times out as a hung one does.
PREDICTION_WINDOW = 0.05
RESERVE_SECONDS = 10.0  # the handler's reserve for writing and forwarding, on the frozen clock
HANG_SECONDS = 20 * PREDICTION_WINDOW  # a hung call returns when the run ends, or after this
S3_FAULTS = 0.01
WRITE_FAULTS = 0.05  # proposals writes, on top of S3_FAULTS
FORWARD_FAULTS = 0.03  # a whole SendMessageBatch
REFUSED_ENTRIES = 0.02  # single entries of a SendMessageBatch that succeeded
PROPOSAL_READ_FAULTS = 0.001  # the launcher's reads of proposals files (ProposalsApart)
SQS_BATCH_BYTES = 262_144

# Why an image has no proposals file, by the last thing that happened to it (Witness): the stage's time ran out,
# or something failed. "predicted" last, no write after it: the stage had stopped waiting for that prediction.
# "looked at" last: it stopped waiting before the prediction's thread even started (Witness.end allows one a batch).
TIME_CAUSES = {
    "hung": "hung",
    "predicted": "too slow",
    "looked at": "not started in time",
    "skipped for time": "skipped for time",
}
FAILURE_CAUSES = {cause: cause for cause in ("model failed", "unreadable image", "read failed", "write failed")}


def prelabel_settings() -> PrelabelSettings:
    return PrelabelSettings.model_validate(PRELABEL)


def _error(code: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": f"{code} (simulated)"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


def _object(data: bytes, content_type: str = "binary/octet-stream") -> dict[str, Any]:
    return {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data), "ContentType": content_type}


# --- the uploads' files -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """A valid upload's file: a red rectangle on black (left, top, right, bottom), or none; maybe cut short."""

    data: bytes
    box: tuple[int, int, int, int] | None
    readable: bool

    def expected_box(self) -> tuple[int, int, int, int]:
        """What the red-box model finds: the rectangle, or, where there is no red, the whole image."""
        return self.box or (0, 0, *IMAGE_SIZE)


def make_scene(rng: random.Random, image: ImageRef) -> Scene:
    picture = Image.new("RGB", IMAGE_SIZE)
    box = None
    if rng.random() >= EMPTY_SCENES:
        left, top = rng.randint(0, 24), rng.randint(0, 16)
        box = (left, top, rng.randint(left + 4, IMAGE_SIZE[0]), rng.randint(top + 4, IMAGE_SIZE[1]))
        ImageDraw.Draw(picture).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(255, 0, 0))
    buffer = io.BytesIO()
    # The image's id in each file makes its bytes its own: the predictor, given bytes, knows which image it has.
    suffix = image.key.rsplit(".", 1)[-1].lower()
    if suffix == "png":
        info = PngInfo()
        info.add_text("source", image.image_id)
        picture.save(buffer, format="PNG", pnginfo=info)
    elif suffix == "gif":
        picture.save(buffer, format="GIF", comment=image.image_id)
    else:
        # No chroma subsampling: the rectangle's edges stay where they are drawn.
        picture.save(buffer, format="JPEG", quality=95, subsampling=0, comment=image.image_id)
    data = buffer.getvalue()
    if rng.random() < CUT_SHORT:
        return Scene(data[: len(data) // 2], box, readable=False)
    return Scene(data, box, readable=True)


class UploadedImages:
    """The file of each valid upload, at the version its event names (the events name objects moto does not
    hold: only the pre-label stage reads them)."""

    def __init__(self, seed: int, uploads: Iterable[Upload]) -> None:
        self.scenes: dict[ImageRef, Scene] = {}
        self.by_bytes: dict[bytes, ImageRef] = {}
        self.by_key: dict[str, ImageRef] = {}
        for upload in uploads:
            if upload.expected_skip is not None:
                continue
            image = ImageRef(BUCKET, upload.key, upload.version)
            scene = make_scene(random.Random(f"{seed}/scene/{image.image_id}"), image)
            self.scenes[image] = scene
            self.by_bytes[scene.data] = image
            self.by_key[image.key] = image

    def get_object(self, request: dict[str, Any]) -> dict[str, Any]:
        image = self.by_key.get(request["Key"])
        if image is None:
            raise _error("NoSuchKey", 404, "GetObject")
        if request.get("VersionId") != image.version:
            raise _error("NoSuchVersion", 404, "GetObject")
        data = self.scenes[image].data
        if (wanted := request.get("Range")) is not None:
            first, last = wanted.removeprefix("bytes=").split("-")
            data = data[int(first) : int(last) + 1]
        return _object(data)


class Bucket:
    """The S3 client that the stage and the launcher share: the uploads' files from `UploadedImages`, proposals
    files in moto or, with `proposals_in_memory`, in a dict that answers as S3 does (HEAD 404, GET NoSuchKey),
    where moto's 3 ms a call would add minutes at 5,000 uploads a seed; anything else goes to moto."""

    def __init__(self, client: Any, images: UploadedImages, *, proposals_in_memory: bool) -> None:
        self._client = client
        self._images = images
        self._files: dict[str, bytes] | None = {} if proposals_in_memory else None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _memory(self, key: str) -> dict[str, bytes] | None:
        """The files in memory, when `key` is one of them."""
        return self._files if key.startswith(PROPOSALS_PREFIX) else None

    def get_object(self, **request: Any) -> Any:
        key = request["Key"]
        if key.startswith(INPUT_PREFIX):
            return self._images.get_object(request)
        if (files := self._memory(key)) is not None:
            with self._lock:
                data = files.get(key)
            if data is None:
                raise _error("NoSuchKey", 404, "GetObject")
            return _object(data, "application/json")
        return self._client.get_object(**request)

    def head_object(self, **request: Any) -> Any:
        key = request["Key"]
        if (files := self._memory(key)) is not None:
            with self._lock:
                data = files.get(key)
            if data is None:
                raise _error("404", 404, "HeadObject")  # a HEAD has no body: S3 answers the bare status
            return {"ContentLength": len(data), "ContentType": "application/json"}
        return self._client.head_object(**request)

    def put_object(self, **request: Any) -> Any:
        key = request["Key"]
        if (files := self._memory(key)) is not None:
            body = request["Body"]
            with self._lock:
                if request.get("IfNoneMatch") == "*" and key in files:
                    raise _error("PreconditionFailed", 412, "PutObject")
                files[key] = body if isinstance(body, bytes) else str(body).encode("utf-8")
            return {"ETag": '"simulated"'}
        return self._client.put_object(**request)

    def proposal_keys(self) -> set[str]:
        if self._files is not None:
            with self._lock:
                return set(self._files)
        keys: set[str] = set()
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PROPOSALS_PREFIX):
            keys.update(item["Key"] for item in page.get("Contents", []))
        return keys


class ProposalReads:
    """The launcher's S3 client, noting the proposals files it read (below Flaky: only the reads that worked)."""

    def __init__(self, client: Any, images: Iterable[ImageRef]) -> None:
        self._client = client
        self._images = {proposal_key(MODEL_VERSION, image): image for image in images}
        self._lock = threading.Lock()
        self.read: set[ImageRef] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **request: Any) -> Any:
        answer = self._client.get_object(**request)
        if (image := self._images.get(request["Key"])) is not None:
            with self._lock:
                self.read.add(image)
        return answer


class ProposalsApart:
    """The launcher's S3 client, its reads of proposals files through `proposals`, with rarer faults: a job start
    reads one file per image, so at the 1% of the other calls two starts of a 100-image job in three would fail."""

    def __init__(self, client: Any, proposals: Any) -> None:
        self._client = client
        self._proposals = proposals

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **request: Any) -> Any:
        chosen = self._proposals if request["Key"].startswith(PROPOSALS_PREFIX) else self._client
        return chosen.get_object(**request)


# --- what happened to each image ----------------------------------------------------------------------------------


class Witness:
    """What happened to each image in the stage, as the stage's predictor and S3 client saw it, in order. Only the
    last thing counts: a retry or a duplicate event may end what an earlier try did not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._order = 0
        self._local = threading.local()
        self.last: dict[ImageRef, tuple[int, str]] = {}
        self.events: Counter[str] = Counter()
        self.predicted: set[ImageRef] = set()  # given to the predictor at least once
        self.errors: list[str] = []

    def note(self, image: ImageRef, what: str) -> int:
        with self._lock:
            self._order += 1
            self.last[image] = (self._order, what)
            self.events[what] += 1
            return self._order

    def asked(self, image: ImageRef) -> None:
        with self._lock:
            self.predicted.add(image)

    def begin(self) -> None:
        self._local.looks = {}

    def looked(self, image: ImageRef) -> None:
        """The stage looked for the image's proposals file: it had time for the image."""
        self._local.looks[image] = self.note(image, "looked at")

    def end(self, images: set[ImageRef], counts: StageCounts, place: str) -> None:
        """An image of the batch that the stage never looked at was skipped for time. Of those it looked at, only
        one can have nothing after the look (no file found or written, no failure): the one whose prediction the
        stage gave up on before it started, after which it looks at nothing more."""
        looks: dict[ImageRef, int] = self._local.looks
        skipped = images - set(looks)
        for image in sorted(skipped):
            self.note(image, "skipped for time")
        with self._lock:
            silent = sorted(image.image_id for image, order in looks.items() if self.last[image][0] == order)
            if len(skipped) != counts.skipped_for_time:
                self.errors.append(
                    f"invocation {place}: {len(skipped)} images not looked at, {counts.skipped_for_time} counted as "
                    "skipped for time"
                )
            if len(silent) > 1:
                self.errors.append(f"invocation {place}: looked at, then nothing: {silent}")


class WitnessedS3:
    """The stage's S3 client (above the faults): which images it looked at, and which reads and writes failed."""

    def __init__(self, client: Any, witness: Witness, images: Iterable[ImageRef]) -> None:
        self._client = client
        self._witness = witness
        self._by_proposal = {proposal_key(MODEL_VERSION, image): image for image in images}
        self._by_key = {image.key: image for image in self._by_proposal.values()}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def head_object(self, **request: Any) -> Any:
        image = self._by_proposal.get(request["Key"])
        if image is not None:
            self._witness.looked(image)
        answer = self._client.head_object(**request)
        if image is not None:
            self._witness.note(image, "already there")
        return answer

    def get_object(self, **request: Any) -> Any:
        try:
            return self._client.get_object(**request)
        except Exception:
            # A header read for a held-out image's size may fail: the image is held out all the same.
            if "Range" not in request and (image := self._by_key.get(request["Key"])) is not None:
                self._witness.note(image, "read failed")
            raise

    def put_object(self, **request: Any) -> Any:
        image = self._by_proposal.get(request["Key"])
        try:
            answer = self._client.put_object(**request)
        except Exception:
            if image is not None:
                self._witness.note(image, "write failed")
            raise
        if image is not None:
            self._witness.note(image, "written")
        return answer


# --- the predictor and the launch queue ---------------------------------------------------------------------------

ENDPOINT_URL = "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/detector/invocations"
FAILURES: tuple[Callable[[], Exception], ...] = (
    lambda: PredictionError("endpoint detector answered 'boxes' of 3 and 'scores' of 2 (injected)"),
    lambda: ReadTimeoutError(endpoint_url=ENDPOINT_URL),
    lambda: ClientError(
        {
            "Error": {"Code": "ModelError", "Message": "Received server error (500) from primary (injected)"},
            "ResponseMetadata": {"HTTPStatusCode": 424},
        },
        "InvokeEndpoint",
    ),
)


class ChaosPredictor:
    """The red-box detector, except on a seeded share of calls: those raise, or hang. Each call's fate comes from
    the seed, the image and how many times it was asked for that image, not from the threads' interleaving."""

    def __init__(
        self, seed: int, images: UploadedImages, witness: Witness, release: threading.Event, settings: PrelabelSettings
    ) -> None:
        self._seed = seed
        self._images = images
        self._witness = witness
        self._release = release
        self._inner = OnnxPredictor.from_model(red_box_onnx(), settings)
        self._lock = threading.Lock()
        self._calls: Counter[ImageRef] = Counter()

    def predict(self, image_bytes: bytes) -> Prediction:
        image = self._images.by_bytes[image_bytes]
        self._witness.asked(image)
        with self._lock:
            self._calls[image] += 1
            call = self._calls[image]
        rng = random.Random(f"{self._seed}/predict/{image.image_id}/{call}")
        roll = rng.random()
        if roll < FAILING_CALLS:
            self._witness.note(image, "model failed")
            raise rng.choice(FAILURES)()
        if roll < FAILING_CALLS + HANGING_CALLS:
            self._witness.note(image, "hung")
            self._release.wait(HANG_SECONDS)
            raise PredictionError("a hung call, long given up on")
        try:
            prediction = self._inner.predict(image_bytes)
        except PredictionError:
            self._witness.note(image, "unreadable image")
            raise
        self._witness.note(image, "predicted")
        return prediction


class LaunchQueue:
    """The launcher's queue as the stage's SQS client sees it: SendMessageBatch (SQS's limits checked) and
    SendMessage put the bodies on the simulated queue. A seeded share of a batch's entries is refused, as SQS
    does now and then; the first invocation to forward more than one message is killed right after."""

    def __init__(self, queue: SimulatedQueue, faults: InvocationFaults) -> None:
        self._queue = queue
        self._faults = faults
        self._lock = threading.Lock()
        self._sent = 0
        self.killed = False
        self.refused = 0

    def _enqueue(self, body: str) -> str:
        with self._lock:
            self._sent += 1
            message_id = f"f{self._sent:07d}"
        with self._queue.lock:
            self._queue.waiting.append(Message(message_id, body))
        return message_id

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        ids = [entry["Id"] for entry in Entries]
        if not 1 <= len(Entries) <= 10 or len(set(ids)) != len(ids):
            raise _error("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400, "SendMessageBatch")
        if sum(len(entry["MessageBody"].encode()) for entry in Entries) > SQS_BATCH_BYTES:
            raise _error("AWS.SimpleQueueService.BatchRequestTooLong", 400, "SendMessageBatch")
        successful, failed = [], []
        for entry in Entries:
            if self._faults.roll() < REFUSED_ENTRIES:
                failed.append({"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"})
                with self._lock:
                    self.refused += 1
                continue
            successful.append({"Id": entry["Id"], "MessageId": self._enqueue(entry["MessageBody"])})
        with self._lock:
            kill = not self.killed and len(successful) > 1
            self.killed = self.killed or kill
        if kill:
            raise Killed("the pre-label function timed out after its forward")
        return {"Successful": successful, "Failed": failed}

    def send_message(self, QueueUrl: str, MessageBody: str) -> dict[str, Any]:
        return {"MessageId": self._enqueue(MessageBody)}


# --- a seed's run -------------------------------------------------------------------------------------------------


@dataclass
class Coverage:
    proposed: int
    held_out: int
    failed: int
    timed_out: int
    causes: Counter[str] = field(default_factory=Counter)
    proposals: dict[ImageRef, Proposal] = field(default_factory=dict)

    @property
    def without(self) -> int:
        return self.failed + self.timed_out

    def why(self) -> str:
        return ", ".join(f"{cause} {count}" for cause, count in sorted(self.causes.items()))

    def line(self) -> str:
        return (
            f"pre-label coverage: {self.proposed} proposed, {self.held_out} held out, {self.without} without "
            f"(failed {self.failed}, timed out {self.timed_out})"
        )


class PrelabelRun:
    """One seed's pre-label stage, forwarding into `launch_queue`."""

    def __init__(
        self,
        seed: int,
        rng: random.Random,
        uploads: list[Upload],
        bucket: Bucket,
        images: UploadedImages,
        launch_queue: SimulatedQueue,
        faults: InvocationFaults,
        limits: ImageLimits,
    ) -> None:
        self.seed = seed
        self.settings = prelabel_settings()
        self.queue = SimulatedQueue(rng)
        self.bucket = bucket
        self.images = images
        self.limits = limits
        self.faults = faults
        self.witness = Witness()
        self.release = threading.Event()
        valid = list(images.scenes)
        self.s3_faults = Flaky(bucket, faults, S3_FAULTS, serialize=False)
        self.write_faults = Flaky(
            self.s3_faults, faults, WRITE_FAULTS, serialize=False, operations=frozenset({"put_object"})
        )
        self.s3 = WitnessedS3(self.write_faults, self.witness, valid)
        self.launch = LaunchQueue(launch_queue, faults)
        self.sqs = Flaky(self.launch, faults, FORWARD_FAULTS, serialize=False)
        self.predictor = ChaosPredictor(seed, images, self.witness, self.release, self.settings)
        by_key = {image.key: image for image in valid}
        self.body_images: dict[str, set[ImageRef]] = {}
        for upload in uploads:
            body = json.dumps({"Records": [upload.record()]})
            self.body_images[body] = {by_key[upload.key]} if upload.key in by_key else set()
        self.counts = Counter[str]()
        self.errors: list[str] = []
        self.rounds = self.redriven = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def invocation(self, batch: list[Message], place: str) -> None:
        self.faults.rng = random.Random(f"{self.seed}/prelabel/{place}")
        stage = PrelabelStage(
            s3_client=self.s3,
            sqs_client=self.sqs,
            bucket=BUCKET,
            launch_queue_url="https://sqs.example.com/launch",
            settings=self.settings,
            predictor_factory=lambda: self.predictor,
            limits=self.limits,
            # A frozen clock: each prediction gets PREDICTION_WINDOW, however many came before it in the batch.
            deadline=RESERVE_SECONDS + PREDICTION_WINDOW,
            clock=lambda: 0.0,
            reserve_seconds=RESERVE_SECONDS,
        )
        images: set[ImageRef] = set()
        for message in batch:
            images |= self.body_images.get(message.body, set())
        self.witness.begin()
        failed = {m.message_id for m in batch}  # what Lambda does when the function does not return
        try:
            verdict = stage.handle([m.record() for m in batch])
            failed = {message_id for message_id, reason in verdict.items() if reason is not None}
        except Killed:
            pass
        except BaseException as error:  # the stage must catch everything: Lambda would retry the whole batch
            with self._lock:
                self.errors.append(f"invocation {place}: {error!r}")
        finally:
            self.witness.end(images, stage.counts, place)
            with self._lock:
                self.counts.update({name: value for name, value in vars(stage.counts).items() if value})
            self.queue.settle(batch, failed)

    def drain(self, rng: random.Random, messages: list[Message]) -> None:
        self.queue.waiting = messages
        started = time.monotonic()
        try:
            self.rounds, self.redriven = drain(
                self.queue,
                rng,
                self.invocation,
                self.seed,
                concurrency=CONCURRENCY,
                batch_size=BATCH_SIZE,
                # Ten times the rounds it takes without retries (about 40 messages a round).
                max_rounds=max(500, 10 * len(messages) // (CONCURRENCY * BATCH_SIZE // 2)),
            )
        finally:
            self.release.set()
            self.seconds = time.monotonic() - started

    def coverage(self) -> Coverage:
        """Checks what the stage left (the module's docstring says what), and counts it."""
        seed = self.seed
        assert not self.errors, f"seed {seed}: the stage raised: {self.errors[:3]}"
        assert not self.witness.errors, f"seed {seed}: {self.witness.errors[:3]}"
        assert not self.queue.dead, f"seed {seed}: the pre-label DLQ holds {len(self.queue.dead)} message(s)"
        assert self.launch.killed, f"seed {seed}: no pre-label invocation was killed"
        # The stage's metrics count what its S3 client saw it do.
        seen, counted = self.witness.events, self.counts
        assert (seen["already there"], seen["written"]) == (
            counted["already_there"],
            counted["predicted"] + counted["held_out"],
        ), f"seed {seed}: the stage counted {dict(counted)}, its S3 client saw {dict(seen)}"
        valid = set(self.images.scenes)
        found, unreadable = read_proposals(self.bucket, BUCKET, MODEL_VERSION, valid)
        assert not unreadable, f"seed {seed}: unreadable proposals files: {list(unreadable.values())[:3]}"
        stray = self.bucket.proposal_keys() - {proposal_key(MODEL_VERSION, image) for image in found}
        assert not stray, f"seed {seed}: proposals files of no valid upload: {sorted(stray)[:3]}"
        kept_back = {
            image for image in valid if held_out(image.source_ref, image.version, self.settings.hold_out_percent)
        }
        assert not kept_back & self.witness.predicted, f"seed {seed}: held-out images were predicted"
        for image, proposal in found.items():
            scene = self.images.scenes[image]
            size = (proposal.image_width, proposal.image_height)
            if image in kept_back:
                # The size comes from a header read that may fail: the image is held out all the same.
                assert proposal.held_out and not proposal.boxes and size in (IMAGE_SIZE, (0, 0)), (seed, proposal)
                continue
            assert not proposal.held_out and scene.readable and size == IMAGE_SIZE, (seed, proposal)
            found_boxes = [
                (box.label, box.left, box.top, box.left + box.width, box.top + box.height) for box in proposal.boxes
            ]
            expected = [("Dog", *scene.expected_box())]
            assert len(found_boxes) == len(expected), (seed, image, proposal.boxes, scene.box)
            for box, wanted in zip(found_boxes, expected, strict=True):
                assert box[0] == wanted[0] and box[1:] == pytest.approx(wanted[1:], abs=1e-3), (
                    seed,
                    image,
                    box,
                    wanted,
                )
        failed: Counter[str] = Counter()
        timed_out: Counter[str] = Counter()
        for image in valid - set(found):
            last = self.witness.last.get(image)
            assert last is not None, f"seed {seed}: {image.image_id} has no proposals and the stage never had it"
            if last[1] in TIME_CAUSES:
                timed_out[TIME_CAUSES[last[1]]] += 1
            else:
                assert last[1] in FAILURE_CAUSES, f"seed {seed}: {image.image_id} has no proposals after {last[1]!r}"
                failed[FAILURE_CAUSES[last[1]]] += 1
        held = sum(proposal.held_out for proposal in found.values())
        return Coverage(
            proposed=len(found) - held,
            held_out=held,
            failed=failed.total(),
            timed_out=timed_out.total(),
            causes=failed + timed_out,
            proposals=found,
        )

    def figures(self) -> str:
        """The stage's own counts summed over its invocations, and the faults injected into it."""
        counts = ", ".join(f"{name} {value}" for name, value in sorted(self.counts.items()))
        causes = ", ".join(f"{cause} {count}" for cause, count in sorted(self.witness.events.items()))
        return (
            f"pre-label stage: {self.rounds} rounds, {self.redriven} message(s) redriven; counts {counts}; "
            f"events {causes}; "
            f"{self.s3_faults.failures + self.write_faults.failures} S3 and {self.sqs.failures} SendMessageBatch "
            f"faults, {self.launch.refused} entries refused; {self.seconds:.1f} s"
        )
