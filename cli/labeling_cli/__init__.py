"""bbox-labeling (also gt-labeling): upload, watch, export and review the labeling pipeline from a terminal."""
