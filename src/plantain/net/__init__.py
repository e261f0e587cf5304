"""Outbound connections to addresses callers choose: the address guard and input-image fetching."""
