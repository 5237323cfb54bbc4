"""Cross-cutting adapters every service shares: settings, logging, Kafka admin, lifecycle."""
