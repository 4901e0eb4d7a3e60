"""Pre-labels: boxes a detector proposes for an image before people label it.

- detector.py: runs an ONNX detector on an image and reads the boxes out of the tensors its exporter writes.
- settings.py: `labeling.prelabel`, which detector, which of its classes become which labels.
- holdout.py: which images get no proposals, so that each job compares labeling with and without them.
- metrics.py: how the proposals are judged against the boxes people keep.
"""
