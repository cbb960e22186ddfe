"""Device secrets and TLS material generated on the device at first start."""
