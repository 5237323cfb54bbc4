"""Ingest: Meta webhooks in, durable raw records and typed events out."""
