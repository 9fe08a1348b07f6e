"""Tests of each simulated vendor module, over real HTTP."""
