"""Benchmarks (`make bench`, `fsllm-sim bench`): each prints ratios measured side by side in one run."""
