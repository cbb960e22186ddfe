"""Hardware side of the appliance: tuning profile (``gk tune``), reset button (``gk button``),
LEDs and first-boot provisioning (``gk provision``). Runs outside ``gk serve``; none of it is
imported by the server."""
