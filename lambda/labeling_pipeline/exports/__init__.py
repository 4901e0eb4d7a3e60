"""Labeled images (the neutral stream) -> COCO, YOLO and Pascal VOC (pure, streaming, shared by Lambda and CLI)."""
