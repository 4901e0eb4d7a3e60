"""Ground Truth bounding-box output -> COCO, YOLO and Pascal VOC (pure, streaming, shared by Lambda and CLI)."""
