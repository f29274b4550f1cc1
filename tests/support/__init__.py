"""Shared test and bench support: starting and stopping real servers (servers.py)."""
