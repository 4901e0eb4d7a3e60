"""Label Studio's infrastructure: its deployment settings here; its constructs beside them. The pipeline uses the
server at ``labeling.labelStudioUrl``, or, without it, deploys one (server.py)."""
