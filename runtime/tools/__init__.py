"""Tools around engines: ``doctor`` (what the GPU path finds here) and ``inspect`` (what a program
needs to drive an engine)."""
