"""memory-server: long-term memory for AI agents over HTTP."""

import os

# numpy's BLAS does the server's small matrix work (ranking's similarity matrix: ~120 x 384);
# split over threads it runs ~15x slower than on one when requests already share the cores
# (measured: 5 ms vs 0.3 ms for one matrix on this 2-core machine). torch uses MKL, not this.
# Set before numpy is first imported; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
