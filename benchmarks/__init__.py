"""sft-lab benchmarks: each module measures ratios side by side in one run and prints a table."""
