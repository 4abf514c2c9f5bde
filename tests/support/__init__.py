"""Harnesses shared by the test folders: the lockstep model+chain system and the flaky-RPC proxy."""
