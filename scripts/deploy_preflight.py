"""Stop `make deploy` before anything is sent to AWS when credentials or a region are missing."""

from __future__ import annotations

import os
import sys

import boto3


def main() -> int:
    session = boto3.Session()
    missing = []
    if session.get_credentials() is None:
        missing.append(
            "AWS credentials: run `aws configure` or `aws sso login`, or export AWS_PROFILE "
            "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    # The CDK CLI takes AWS_REGION first; boto3 reads only AWS_DEFAULT_REGION and the profile's region.
    region = os.environ.get("AWS_REGION") or session.region_name
    if not region:
        missing.append("a region: export AWS_REGION (one where your labeling backend runs, e.g. us-east-1)")
    if missing:
        print("Synthesized the stacks into cdk.out/, but did not deploy. Missing:", file=sys.stderr)
        for item in missing:
            print(f"  - {item}", file=sys.stderr)
        print("Nothing was sent to AWS. Fix the above and run `make deploy` again.", file=sys.stderr)
        return 1
    print(f"Deploying with region {region}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
