"""Reliability tests: many processes, rotation, crashes, faults, overload (issue 3).

Durations are short by default; ``SERVICELOG_SOAK_SECONDS`` (per scenario) and
``SERVICELOG_KILLS`` (kill -9 rounds) make them longer for a soak run.
"""
