"""Campaigns: bulk mails with an audience, approvals and a schedule, and step mails that
follow dates in member data; each becomes a delivery Source when it is sent."""
