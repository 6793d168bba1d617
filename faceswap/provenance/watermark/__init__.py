"""The watermark's algorithms: marking and reading (marker.py), the tiled layer and its lattice,
the payload codes and scheme 1's readers. Imports nothing else from provenance/, so the sink and
the verifier share one reading of the mark."""
