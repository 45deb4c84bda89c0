"""Reference data the mappings need: countries and Indian GST states."""
