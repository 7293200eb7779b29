"""Detection pre- and post-processing: frames to network inputs, network outputs to boxes.

Pure numpy/OpenCV functions; the runtime calls them from its pre/post-processing thread pools.
"""

# what `detect: {kind: ...}` and `hetsched run --detect` accept; here, import-free, so that the
# command line can list them without loading numpy and OpenCV
EXPORT_KINDS = ("ultralytics", "yolov5", "yolox", "nms", "efficientnms")
KINDS = ("auto", "yolo", *EXPORT_KINDS, "db", "none")
