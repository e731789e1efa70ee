"""ChaSe benchmarks: infrastructure baselines and the whole system end to end, measured in one run.

Run ``python -m bench.run`` (or ``make bench``); ``docs/benchmarks.md`` explains what is
measured and how to read it. Nothing here is imported by the services or the tests' fixtures.
"""
