"""Webhooks: the guard on where they may go, their signing, the delivery history and the API.

notify (`functions/notify/main.py`) delivers them; see docs/events.md for what is sent."""
