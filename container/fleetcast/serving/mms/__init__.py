"""Multi Model Server, the reference server: handler.py (the handler service MMS runs per model) and
supervisor.py (starting and stopping MMS)."""
