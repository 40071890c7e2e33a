"""Trajectories to and from other formats (ATIF)."""
