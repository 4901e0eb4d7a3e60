"""Ground Truth's infrastructure: its deployment settings here; its constructs beside them."""
