"""What only the benchmark (`python -m ssnets.bench`) needs: timed throughput, peak memory, a compiled
forward pass, and the reference figures of PERFORMANCE.md.

May import `ssnets.common`, `ssnets.data`, `ssnets.models` and `ssnets.training`; the training
loop never imports this package.
"""
