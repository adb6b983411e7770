"""Bulk nominations from CSV: parsing and validation (pure), and batched writes."""
