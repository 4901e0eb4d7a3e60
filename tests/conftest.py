from __future__ import annotations

import os

from tests.node import node_major

# Tests never reach AWS: fixed fake credentials and region before boto3 is imported anywhere.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "GroundTruthLabelingTest",
        "POWERTOOLS_SERVICE_NAME": "labeling-launcher",
        # jsii's end-of-life banner, for whichever Node runs here (Debian 12 has 18; these machines 20).
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": node_major(),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
)

# moto 5.2.5 deep-copies a whole table per action of a TransactWriteItems call (the ledger's batched
# claims); moto_transactions keeps moto's semantics and takes the rollback copy once per call. It also sorts
# the whole table on every Query and Scan, converting values at each comparison; moto_sorting converts them
# once (same order). See the modules.
from tests import moto_sorting, moto_transactions  # noqa: F401
