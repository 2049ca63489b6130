"""syncd's benchmarks: ratios measured side by side in one run (`make bench`, `python -m bench NAME…`).

Kept free of imports on purpose: `python -m bench.memsync` measures the memory of a process that
should hold syncd and nothing else.
"""
