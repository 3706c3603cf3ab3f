"""ZRTP (RFC 6189): sans-I/O key agreement for SRTP, with SAS and key continuity."""
