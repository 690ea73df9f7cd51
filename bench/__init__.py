"""Bench scripts: bounded measurements against the real daemon, reported as ratios."""
