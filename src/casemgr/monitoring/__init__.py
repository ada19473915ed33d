"""Electronic monitoring: lawful orders, devices and zones, and what tracking is told of them."""
