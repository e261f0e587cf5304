"""Webhooks: delivery from the durable outbox, and Standard Webhooks signatures."""
