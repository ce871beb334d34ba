"""Workspace administration pages: operators, roles, API keys, IP rules, audit log, settings."""
