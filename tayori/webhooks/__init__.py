"""Webhooks: a workspace's endpoints subscribed to delivery, tracking and member events, and the
signed JSON posts that tell them — retried with backoff for three days, each attempt logged,
replayable by hand, and an endpoint that fails for three days disabled with a notice."""
