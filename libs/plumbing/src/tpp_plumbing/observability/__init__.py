"""Tracing, OTLP export, metrics, logs, memory."""
