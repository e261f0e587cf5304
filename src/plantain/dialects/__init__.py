"""HTTP dialects: each converts its vendor's wire format to and from the internal model."""
