"""The `dcs` command: the notebook's pipeline, headless (commands.py), and its terminal views."""

from .commands import main

__all__ = ["main"]
