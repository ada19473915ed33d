"""Outbound notifications of alerts: HMAC-signed webhooks and SMS, from a transactional outbox."""
