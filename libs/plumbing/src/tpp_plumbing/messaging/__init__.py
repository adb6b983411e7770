"""Kafka: the outbox and its relay, inbox, consumers, dead letters, topics, ACLs."""
