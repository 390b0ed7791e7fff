"""Recorded CaseWorkflow histories (one per protocol, branch and policy) that
``tests/workflows/test_replay.py`` replays; ``python -m tests.histories.record`` writes them."""
