"""Slack platform adapters: the Web API client, per-channel pacing of messages, OAuth installs."""
