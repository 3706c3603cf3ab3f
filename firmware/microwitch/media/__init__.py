"""Media for the endpoint agent: SRTP/SRTCP (RFC 3711, RFC 6188), RTP/RTCP (RFC 3550), G.711, a small
jitter buffer, RFC 4733 telephone-events, ZRTP/RTP/RTCP demultiplexing on one port and 8 kHz WAV files.

Everything here is sans-I/O except wav (which reads and writes files the caller opens)."""
