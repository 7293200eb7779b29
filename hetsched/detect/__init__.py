"""Detection pre- and post-processing: frames to network inputs, network outputs to boxes.

Pure numpy/OpenCV functions; the runtime calls them from its pre/post-processing thread pools.
"""
