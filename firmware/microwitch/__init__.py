"""microwitch: a SIP registrar/forwarder and ZRTP agent for small devices."""
VERSION = "0.1.0"
