"""DNS client for RFC 3263 server location: message codec, cache, resolver, locator (all sans-I/O)."""
