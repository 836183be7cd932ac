"""The computerized adaptive test: session state, selection, exposure control, content
balancing, stopping, per-skill scoring and simulation studies. Imports only `irt`."""
