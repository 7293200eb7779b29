"""The streaming runtime: threads and bounded channels that carry frames from a source through
pre-processing, one engine per PE of each stage, post-processing, to the sinks, in order.

The planning maths never imports this package; it is the only place with threads.
"""
