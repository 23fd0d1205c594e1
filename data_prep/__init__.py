"""Data preparation tools (corpus generators and converters) for the toolkit."""
