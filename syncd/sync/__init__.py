"""Pull jobs: one module per vendor."""
