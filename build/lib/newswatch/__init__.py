"""Application shell shared by the Newswatch daemons: CLI, settings, connections, run loop."""

__version__ = "0.1.0"
