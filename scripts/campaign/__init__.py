"""The fault campaign's parts (scripts/fault-campaign is the entry point)."""
