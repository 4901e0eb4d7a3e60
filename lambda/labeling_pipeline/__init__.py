"""Runtime code of the labeling pipeline (no CDK imports: this folder is the Lambda asset)."""
