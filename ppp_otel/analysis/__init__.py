"""Judging turns off the app thread: questions, their effort, preference violations."""
