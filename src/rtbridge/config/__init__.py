"""The declarative configuration file (SPEC §5): its validation and ``rtbridge apply``."""
