"""The node: registrar (registrar.py), forwarder and the sans-I/O core that ties them to the SIP layer."""
