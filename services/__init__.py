"""mmbus: WhatsApp marketing messages over Apache Kafka."""
