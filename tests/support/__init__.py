"""Shared test support: a real `gk serve` subprocess, free ports, loopback DNS."""
