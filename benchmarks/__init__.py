"""Benchmarks of J.A.R.V.I.S. Desktop against a peer, measured side by side in one run.

    .venv/bin/python -m benchmarks            # everything (about 18 minutes on two cores)
    .venv/bin/python -m benchmarks --quick    # a short smoke run
    .venv/bin/python -m benchmarks --only idle,startup

See benchmarks/run.py. Needs the ``bench`` extra (pip install -e '.[bench]') and Debian's
chromium + chromium-driver. Nothing here is imported by the app or the tests.
"""
