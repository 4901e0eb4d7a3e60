"""Label Studio's infrastructure: its deployment settings here; its constructs beside them. This issue deploys
no Label Studio server: the pipeline uses one reachable at ``labeling.labelStudioUrl``."""
