"""Accounts: workspaces, operators and their roles, permissions, audit log, IP rules and API keys.

Everything else in Tayori belongs to a workspace and is reached through an operator's membership
or an API key, both of which this app owns.
"""
